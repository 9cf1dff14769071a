import type { Health, Role } from '../core/types.ts'
import type { FrontDoorStats } from '../frontdoor/front-door.ts'
import type { OutputCommitStats } from '../frontdoor/output-commit.ts'
import type { RecoveryPoint } from './recovery-point.ts'
import type { ReplicaStatus } from './replica-runner.ts'
import type { SnapshotFailures } from './snapshot-retry.ts'

/** What a node reports for the `capacity` election (absent from an older node's status). */
export interface Capacity {
  /** Load figure (runtime/load-figure.ts); lower is elected first. */
  load?: number
  /** Free disk for the state, less the reserve (null: not reported). */
  room_bytes?: number | null
  site?: string | null
}

/** What `sustain status --json` prints and the UI shows: one node's view of the federation. */
export interface NodeStatus {
  node: {
    key: string
    name: string
    priority: number
    role: Role
    term: number
    server: string | null
    health: Health
    uptime_ms: number
    service_port: number | null
  } & Capacity
  peers: Array<
    {
      key: string
      name: string | null
      priority: number
      role: Role
      term: number
      reachable: boolean
      last_heard_ms_ago: number
      snapshot: string | null
      health: Health
      /** Suspicion from the overlay's failure detector (phi); null before the first report. */
      phi: number | null
      /** What carries snapshot data to and from it: a direct TCP lane, hyperswarm, or nothing yet. */
      data: 'lane' | 'hyperswarm' | null
    } & Capacity
  >
  /** What a failover would restore now (the newest snapshot a candidate holds) and whether it is stuck. */
  recovery_point: RecoveryPoint
  /** This node's own snapshot attempts failing in a row (0 when the last one succeeded). */
  snapshot_failures: SnapshotFailures
  snapshot: { id: string; age_ms: number | null; size_bytes: number; held: number } | null
  replicating: string[]
  /** This node's front door (absent when it has none). */
  front_door?: FrontDoorStats
  /**
   * A Type0 service with `replicas` (absent otherwise): whether this node serves, the replicas it
   * knows serve, and the connections its front door has open to each (`local` or a member's key).
   */
  replica?: ReplicaStatus & { open_by_route: Record<string, number> }
  /**
   * Zero-loss mode: `k` (null: off). The rest only on a node whose service runs with it on: what its
   * front door holds now and the last release (zero before it serves).
   */
  output_commit: { k: number | null } & Partial<OutputCommitStats>
}
