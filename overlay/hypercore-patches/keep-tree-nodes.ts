import { checkField, checkMethod } from './check.ts'
import type { Internals } from './internals.ts'
import { type HypercorePatch, Installed } from './patch.ts'
import { replaceMethod } from './replace-method.ts'

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
interface State {
  clear(...args: unknown[]): Promise<unknown>
  createWriteBatch(): { deleteTreeNode(index: number): void }
}

const NAME = 'keep-tree-nodes'
const installed = new Installed()

export const keepTreeNodes: HypercorePatch = {
  name: NAME,
  pkg: 'hypercore',
  written_for: '11.37.1',
  check(internals: Internals) {
    const proto = internals.SessionState.prototype
    checkMethod(NAME, proto, 'SessionState', 'clear')
    checkMethod(NAME, proto, 'SessionState', 'createWriteBatch')
    const state = (internals.core as unknown as { state: unknown }).state
    checkField(NAME, internals.core, 'Hypercore', 'state.storage', 'object')
    // The batch createWriteBatch returns (hypercore-storage's CoreTX): the method the patch silences.
    const tx = (state as { storage: { write(): unknown } }).storage.write()
    checkMethod(NAME, tx, 'CoreTX', 'deleteTreeNode')
  },
  install(internals: Internals) {
    if (installed.active) return
    const proto = internals.SessionState.prototype as State
    const createWriteBatch = proto.createWriteBatch
    installed.add(
      replaceMethod(
        NAME,
        proto,
        'clear',
        (clear) =>
          async function (this: State, ...args: unknown[]) {
            this.createWriteBatch = function (this: State) {
              const tx = createWriteBatch.call(this)
              tx.deleteTreeNode = () => {}
              return tx
            }
            try {
              return await clear.apply(this, args)
            } finally {
              delete (this as Partial<State>).createWriteBatch
            }
          },
      ),
    )
  },
  uninstall: () => installed.revert(),
}
