import assert from 'node:assert/strict'
import SessionState from 'hypercore/lib/session-state.js'

/**
 * Make hypercore's `clear()` free block data only, never merkle tree nodes.
 *
 * Hypercore 11.37 also deletes the tree nodes of every subtree left without blocks. A reader that last saw
 * this core at an older length then can never upgrade: the proof from its length to the new one needs
 * those nodes ("upgradeable" fails), so after a partition the other side's new snapshots and merge archive
 * stay invisible; and a sparse holder asked for a proof over such a subtree throws INVALID_OPERATION,
 * which tears down the whole connection. Tree nodes cost ~2 x 40 bytes per block (blocks are up to 1 MiB):
 * keeping them is what makes garbage collection safe to replicate.
 *
 * `clear` creates its write batch right after taking the state's mutex; the override is an own property
 * for that call only. Appends never delete tree nodes and our cores never truncate, so a batch another
 * call creates meanwhile loses nothing it needs.
 */
const clear = SessionState.prototype.clear
const createWriteBatch = SessionState.prototype.createWriteBatch
assert.equal(typeof clear, 'function', 'hypercore SessionState.clear moved: re-check keep-tree-nodes.ts')
assert.equal(typeof createWriteBatch, 'function', 'hypercore SessionState.createWriteBatch moved')

SessionState.prototype.clear = async function (this: SessionState, ...args: unknown[]) {
  this.createWriteBatch = function (this: SessionState) {
    const tx = createWriteBatch.call(this)
    tx.deleteTreeNode = () => {}
    return tx
  }
  try {
    return await clear.apply(this, args)
  } finally {
    delete (this as Partial<SessionState>).createWriteBatch
  }
}
