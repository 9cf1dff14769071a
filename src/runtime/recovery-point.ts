import { compareSnapshots } from '../core/ranking.ts'
import type { NodeId, PeerInfo, Role, SnapshotRef } from '../core/types.ts'

/** A recovery point older than this many snapshot intervals means snapshots have stopped reaching candidates. */
export const STUCK_AFTER_INTERVALS = 3

/** What a failover would restore now: the newest snapshot a node that could take over holds. */
export interface RecoveryPoint {
  id: string | null
  /** When that snapshot was taken (the writer's clock, epoch ms). */
  time_ms: number | null
  age_ms: number | null
  /** Candidates that hold it; 0 when no candidate exists and the figure is the server's own newest. */
  holders: number
  /** STUCK_AFTER_INTERVALS snapshot intervals. */
  limit_ms: number
  /** A server exists and the recovery point is older than limit_ms (or absent after limit_ms of serving). */
  stuck: boolean
}

export interface RecoveryInput {
  now_ms: number
  interval_ms: number
  self: { id: NodeId; role: Role; held: SnapshotRef | null }
  server: NodeId | null
  peers: readonly PeerInfo[]
  /** Since when this node serves (null when it does not): a service younger than the limit is not stuck. */
  serving_since_ms: number | null
}

/**
 * Candidates are every other node that is not the server (reachable or not: its copy survives a server
 * loss); this node counts when it does not serve. With no candidate at all (a one-node federation) the
 * server's own newest snapshot stands in, with 0 holders, so a stuck snapshot loop still shows.
 */
export function recoveryPoint(input: RecoveryInput): RecoveryPoint {
  const limit_ms = STUCK_AFTER_INTERVALS * input.interval_ms
  const held: SnapshotRef[] = []
  if (input.self.id !== input.server && input.self.role !== 'server' && input.self.held)
    held.push(input.self.held)
  let candidates = input.self.id !== input.server && input.self.role !== 'server' ? 1 : 0
  for (const peer of input.peers) {
    if (peer.id === input.server || peer.role === 'server') continue
    candidates++
    if (peer.snapshot) held.push(peer.snapshot)
  }
  let newest: SnapshotRef | null = null
  for (const ref of held) if (compareSnapshots(ref, newest) > 0) newest = ref
  let holders = held.filter((ref) => ref.id === newest?.id).length
  if (candidates === 0 && input.self.held) {
    newest = input.self.held
    holders = 0
  }
  const age_ms = newest ? Math.max(0, Math.round(input.now_ms - newest.time_ms)) : null
  const serving_ms = input.serving_since_ms === null ? null : input.now_ms - input.serving_since_ms
  const stuck =
    input.server !== null &&
    (age_ms !== null ? age_ms > limit_ms : serving_ms !== null && serving_ms > limit_ms)
  return { id: newest?.id ?? null, time_ms: newest?.time_ms ?? null, age_ms, holders, limit_ms, stuck }
}

/**
 * The server's newest snapshot, when this candidate has fallen behind it: the server holds a newer one
 * and this node's newest is older than `limit_ms` (or absent). Background replication places each new
 * snapshot as the writer announces it; a node that missed them (a rejoin whose downloads never finished:
 * `leave.slow`, 60 s without one) fetches the newest by id instead, as a restore does.
 */
export function catchUpTarget(input: RecoveryInput): SnapshotRef | null {
  if (input.self.role !== 'candidate' || input.server === null || input.server === input.self.id) return null
  const server = input.peers.find((p) => p.id === input.server)
  const newest = server?.reachable && server.role === 'server' ? server.snapshot : null
  if (!newest || compareSnapshots(newest, input.self.held) <= 0) return null
  const limit_ms = STUCK_AFTER_INTERVALS * input.interval_ms
  const held = input.self.held
  return held === null || input.now_ms - held.time_ms > limit_ms ? newest : null
}
