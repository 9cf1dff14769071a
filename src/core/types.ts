/** Hex-encoded ed25519 public key of a node. */
export type NodeId = string

export const ROLES = ['candidate', 'electing', 'restoring', 'server', 'merging', 'leaving'] as const
export type Role = (typeof ROLES)[number]

export type Strategy = 'static' | 'freshest' | 'capacity'
export type MergeDirection = 'priority' | 'newest-term'
export type Health = 'ok' | 'degraded' | 'down' | 'unknown'

/**
 * One stretch of a lineage: snapshots writer:term:1 .. writer:term:seq, all made by one server in one
 * term. A lineage is the list of segments from the oldest kept to the newest; each segment was restored
 * from the last snapshot of the one before it. Lineages are prefix-closed, so the fork point of two
 * lineages is found from their segments alone, whatever the number of snapshots.
 */
export interface Segment {
  writer: NodeId
  term: number
  seq: number
  /** Time of snapshot `seq` of this segment, as stamped by its writer. */
  time_ms: number
}

/** A snapshot as the core sees it: identity, order and ancestry; the bytes live elsewhere. */
export interface SnapshotRef {
  /** `${writer}:${term}:${seq}`: unique across servers. */
  id: string
  writer: NodeId
  term: number
  seq: number
  time_ms: number
  /** Bytes this snapshot added (its delta); the runtime fills it in when stored. */
  size_bytes: number
  /** Bytes of the whole state it restores to (the runtime fills it in; older snapshots lack it). */
  image_bytes?: number
  /** The writer's site label (`node.site`), when it has one: the `capacity` election's anti-affinity. */
  writer_site?: string
  /** Ancestry including this snapshot as the last segment's head. */
  lineage: Segment[]
  /**
   * Forks merged into this lineage after heals (a loser's head and its ancestry, or a dead fork's
   * snapshot): each segment stands for writer:term:1..seq, prefix-closed like `lineage`. With `lineage`
   * it is the snapshot's closure: what its state holds (lineage.ts `covers`).
   */
  merged?: Segment[]
}

export interface PeerInfo {
  id: NodeId
  reachable: boolean
  role: Role
  term: number
  priority: number
  load: number
  /** Free disk for the state it reported (null: not reported, taken as enough). */
  room_bytes: number | null
  /** Its site label (null: none). */
  site: string | null
  /** The server this peer follows (itself when it is the server). */
  server: NodeId | null
  /** Newest complete snapshot the peer holds. */
  snapshot: SnapshotRef | null
  /** Lineage head of a serving peer (its newest snapshot, made or restored from). */
  head: SnapshotRef | null
  /** A server's forks merged in this stint (from its states): its state holds them before a snapshot says so. */
  merged_in?: Segment[]
  health: Health
  /** Virtual or real time of the last message from this peer. */
  last_heard_ms: number
  /** refuse-to-split: the node this peer supports, from its newest state, and when that state arrived. */
  vote: NodeId | null
  vote_heard_ms: number
  /** refuse-to-split: members this peer counts (0: not told). */
  members: number
  /** Peer resigned and must not be elected before this time. */
  ineligible_until_ms: number
  /** While it restores: its restore's progress count (from its states) and when that last moved. */
  progress: number
  progress_ms: number
}
