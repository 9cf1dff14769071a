import net from 'node:net'
import { patchPeerMethod } from './peer-patch.ts'

/** The parts of hypercore's internal replicator Peer this patch touches (hypercore 11.37). */
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
 * candidates (bench/RESULTS.md). On a lane the window is LANE_INFLIGHT_BLOCKS; hyperswarm's UDX
 * connections keep hypercore's RTT-scaled window.
 */
export function patchLaneWindow(peer: object): void {
  patchPeerMethod<ReplicatorPeer, 'getMaxInflight'>(
    peer,
    'getMaxInflight',
    'lane-window.ts',
    (getMaxInflight) =>
      function (this: ReplicatorPeer) {
        return this.stream.rawStream instanceof net.Socket ? LANE_INFLIGHT_BLOCKS : getMaxInflight.call(this)
      },
  )
}
