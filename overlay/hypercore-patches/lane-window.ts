import net from 'node:net'
import { checkField, checkMethod } from './check.ts'
import type { Internals } from './internals.ts'
import { type HypercorePatch, Installed, peerClass } from './patch.ts'
import { replaceMethod } from './replace-method.ts'

/** The parts of hypercore's internal replicator Peer this patch touches. */
interface ReplicatorPeer {
  stream: { rawStream: unknown }
  getMaxInflight(): number
}

/**
 * Blocks a reader keeps requested at once from a peer on a data lane (a direct TCP connection). Blob
 * blocks are up to 1 MiB, so this is a few MiB in flight, enough to keep both processes busy over
 * loopback or a LAN; TCP's own window covers the rest.
 */
export const LANE_INFLIGHT_BLOCKS = 6

/**
 * Hypercore keeps 48 blocks requested from a peer whose stream is not UDX (it cannot read a round-trip
 * time there): with 1 MiB blocks, 48 MiB queued per candidate in the writer's socket buffers, re-read and
 * re-allocated, which churned the writer's memory into a major GC every ~100 ms while sending to 4
 * candidates. On a lane the window is LANE_INFLIGHT_BLOCKS; hyperswarm's UDX connections keep hypercore's
 * RTT-scaled window.
 */
const NAME = 'lane-window'
const installed = new Installed()

export const laneWindow: HypercorePatch = {
  name: NAME,
  pkg: 'hypercore',
  written_for: '11.37.1',
  check(internals: Internals) {
    checkMethod(NAME, peerClass(internals), 'Peer', 'getMaxInflight')
    checkField(NAME, internals.peer, 'Peer', 'stream.rawStream', 'object')
  },
  install(internals: Internals) {
    if (installed.active) return
    installed.add(
      replaceMethod(
        NAME,
        peerClass(internals) as ReplicatorPeer,
        'getMaxInflight',
        (getMaxInflight) =>
          function (this: ReplicatorPeer) {
            return this.stream.rawStream instanceof net.Socket
              ? LANE_INFLIGHT_BLOCKS
              : getMaxInflight.call(this)
          },
      ),
    )
  },
  uninstall: () => installed.revert(),
}
