import assert from 'node:assert/strict'

/** The parts of hypercore's internal replicator Peer this patch touches (hypercore 11.37). */
interface ReplicatorPeer {
  core: { state: { length: number } }
  syncsProcessing: number
  needsSync: boolean
  sendSync(): void
  _updateCanUpgradeAndSync(): Promise<void>
  /** Ours: the length our newest sync told this peer. */
  sustain_sent_length?: number
}

const patched = new WeakSet<object>()

/**
 * Work around a hypercore 11.37 fault: after this node's core grows, `_updateCanUpgradeAndSync` tells a
 * peer the new length only if whether we can upgrade it changed. Two sparse holders that grow past each
 * other (neither can prove an upgrade from the other's old length) then never learn each other's length,
 * and hypercore asks a peer it believes behind only for blocks it could prove: a restoring node could not
 * fetch a blob from the last holder left (the 8-node r = 2 test, ~1 run in 3). Here a peer whose last sync
 * named an older length gets a sync (or one is queued, as hypercore does, while syncs are processing).
 * Patches the Peer class once, given any of its instances (from a core's 'peer-add').
 */
export function patchUpgradeSync(peer: object): void {
  const proto = Object.getPrototypeOf(peer) as ReplicatorPeer
  if (patched.has(proto)) return
  patched.add(proto)
  const sendSync = proto.sendSync
  const update = proto._updateCanUpgradeAndSync
  assert.equal(typeof sendSync, 'function', 'hypercore Peer has no sendSync: re-check upgrade-sync.ts')
  assert.equal(typeof update, 'function', 'hypercore Peer has no _updateCanUpgradeAndSync')
  proto.sendSync = function (this: ReplicatorPeer) {
    sendSync.call(this)
    // sendSync defers itself (needsSync) while syncs are processing; only a sent sync counts.
    if (!this.needsSync) this.sustain_sent_length = this.core.state.length
  }
  proto._updateCanUpgradeAndSync = async function (this: ReplicatorPeer) {
    await update.call(this)
    if (this.sustain_sent_length === this.core.state.length) return
    if (this.syncsProcessing > 0) this.needsSync = true
    else this.sendSync()
  }
}
