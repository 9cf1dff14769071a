import { checkField, checkMethod } from './check.ts'
import type { Internals } from './internals.ts'
import { type HypercorePatch, Installed, peerClass } from './patch.ts'
import { replaceMethod } from './replace-method.ts'

/** The parts of hypercore's internal replicator Peer this patch touches. */
interface ReplicatorPeer {
  core: { state: { length: number } }
  syncsProcessing: number
  needsSync: boolean
  sendSync(): void
  _updateCanUpgradeAndSync(): Promise<void>
  /** Ours: the length our newest sync told this peer. */
  sustain_sent_length?: number
}

/**
 * Work around a hypercore 11.37 fault: after this node's core grows, `_updateCanUpgradeAndSync` tells a
 * peer the new length only if whether we can upgrade it changed. Two sparse holders that grow past each
 * other (neither can prove an upgrade from the other's old length) then never learn each other's length,
 * and hypercore asks a peer it believes behind only for blocks it could prove: a restoring node could not
 * fetch a blob from the last holder left (the 8-node r = 2 test, ~1 run in 3). Here a peer whose last sync
 * named an older length gets a sync (or one is queued, as hypercore does, while syncs are processing).
 */
const NAME = 'upgrade-sync'
const installed = new Installed()

export const upgradeSync: HypercorePatch = {
  name: NAME,
  pkg: 'hypercore',
  written_for: '11.37.1',
  check(internals: Internals) {
    checkMethod(NAME, peerClass(internals), 'Peer', 'sendSync')
    checkMethod(NAME, peerClass(internals), 'Peer', '_updateCanUpgradeAndSync')
    checkField(NAME, internals.peer, 'Peer', 'core.state.length', 'number')
    checkField(NAME, internals.peer, 'Peer', 'syncsProcessing', 'number')
    checkField(NAME, internals.peer, 'Peer', 'needsSync', 'boolean')
  },
  install(internals: Internals) {
    if (installed.active) return
    const proto = peerClass(internals) as ReplicatorPeer
    installed.add(
      replaceMethod(
        NAME,
        proto,
        'sendSync',
        (sendSync) =>
          function (this: ReplicatorPeer) {
            sendSync.call(this)
            // sendSync defers itself (needsSync) while syncs are processing; only a sent sync counts.
            if (!this.needsSync) this.sustain_sent_length = this.core.state.length
          },
      ),
    )
    installed.add(
      replaceMethod(
        NAME,
        proto,
        '_updateCanUpgradeAndSync',
        (update) =>
          async function (this: ReplicatorPeer) {
            await update.call(this)
            if (this.sustain_sent_length === this.core.state.length) return
            if (this.syncsProcessing > 0) this.needsSync = true
            else this.sendSync()
          },
      ),
    )
  },
  uninstall: () => installed.revert(),
}
