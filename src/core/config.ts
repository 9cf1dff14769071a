import { assert } from './assert.ts'
import type { PlantedBug } from './planted-bugs.ts'
import type { MergeDirection, NodeId, Strategy } from './types.ts'

/**
 * `helper`/`keep-higher`: both sides of a partition may serve, the heal merges or keeps the higher.
 * `refuse-to-split`: a node serves only while a strict majority of the members supports it, so at most
 * one node serves at any time; a minority side has no server (availability traded for one copy).
 */
export type MergePolicy = 'helper' | 'keep-higher' | 'refuse-to-split'

export interface CoreConfig {
  id: NodeId
  priority: number
  strategy: Strategy
  /** A higher-ranked node that appears while a healthy server runs takes over gracefully. */
  preempt: boolean
  merge_direction: MergeDirection
  /** What to do on partition heal: run the merge helper, or keep the winner and save the loser aside. */
  merge_policy: MergePolicy
  /**
   * refuse-to-split only: a node that stops supporting one node (its server, or the node it voted for)
   * supports nobody for this long before it supports another, and a supporter counts only while its
   * newest state naming the supported node is younger than fence_ms / 2. Must exceed fence_ms / 2 plus
   * the message latency plus a tick, so no node is ever counted by two nodes at once; the default also
   * exceeds failure detection (~0.6-1 s) plus a heartbeat.
   */
  fence_ms: number
  heartbeat_interval_ms: number
  /** A new node waits this long to hear of a server before it elects one. */
  join_wait_ms: number
  /** How long an electing node waits for the expected winner's claim before it looks again. */
  election_timeout_ms: number
  snapshot_interval_ms: number
  /** Restarts in place allowed within `restart_window_ms` before the server resigns. */
  restart_budget: number
  restart_window_ms: number
  /** A resigned node is not elected again for this long. */
  resign_cooldown_ms: number
  merge_retry_ms: number
  /**
   * A leaving server waits this long for its successor to claim, and then as long as its restore
   * progresses, moving on once it has not progressed for this long. The same bound makes a restoring
   * node one that others do not elect against.
   */
  handover_timeout_ms: number
  /** Segments kept in a lineage (older ones are dropped; fork points older than that merge from 0). */
  lineage_segments: number
  /**
   * Output commit (zero-loss mode): k, the candidates that must store a snapshot before the output it
   * covers is released; null: off (output passes at once, loss bounded by the snapshot interval).
   */
  output_commit?: number | null
  /** This node's site label (`node.site`): `capacity` prefers another site than the failed server's. */
  site?: string
  /** False for a node that only stores snapshots (no service driver): never elected. */
  can_serve?: boolean
  /** Tests only: plant a known bug to check that the simulator catches it. */
  planted_bug?: PlantedBug
}

export const DEFAULT_CORE_CONFIG: Omit<CoreConfig, 'id' | 'priority'> = {
  strategy: 'static',
  preempt: false,
  merge_direction: 'priority',
  merge_policy: 'helper',
  fence_ms: 2000,
  heartbeat_interval_ms: 200,
  join_wait_ms: 1500,
  election_timeout_ms: 1000,
  snapshot_interval_ms: 5000,
  restart_budget: 3,
  restart_window_ms: 60_000,
  resign_cooldown_ms: 10_000,
  merge_retry_ms: 1000,
  handover_timeout_ms: 10_000,
  lineage_segments: 16,
}

export function checkCoreConfig(config: CoreConfig): void {
  assert(config.id.length > 0, 'config.id is empty')
  assert(Number.isFinite(config.priority), 'config.priority is not a number')
  assert(config.heartbeat_interval_ms > 0, 'heartbeat_interval_ms must be > 0')
  assert(config.election_timeout_ms > 0, 'election_timeout_ms must be > 0')
  assert(config.snapshot_interval_ms > 0, 'snapshot_interval_ms must be > 0')
  assert(config.restart_budget >= 0, 'restart_budget must be >= 0')
  assert(
    config.output_commit == null || (Number.isInteger(config.output_commit) && config.output_commit >= 1),
    'output_commit must be null or an integer >= 1',
  )
  assert(config.lineage_segments >= 2, 'lineage_segments must be >= 2')
  assert(
    config.merge_policy !== 'refuse-to-split' || config.fence_ms >= 4 * config.heartbeat_interval_ms,
    'fence_ms must be >= 4 heartbeats (supporters are counted from states younger than fence_ms / 2)',
  )
}
