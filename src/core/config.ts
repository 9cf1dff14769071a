import { assert } from './assert.ts'
import type { PlantedBug } from './planted-bugs.ts'
import type { MergeDirection, NodeId, Strategy } from './types.ts'

export type MergePolicy = 'helper' | 'keep-higher'

export interface CoreConfig {
  id: NodeId
  priority: number
  strategy: Strategy
  /** A higher-ranked node that appears while a healthy server runs takes over gracefully. */
  preempt: boolean
  merge_direction: MergeDirection
  /** What to do on partition heal: run the merge helper, or keep the winner and save the loser aside. */
  merge_policy: MergePolicy
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
  /** A leaving server waits this long for its successor before it tries the next one. */
  handover_timeout_ms: number
  /** Segments kept in a lineage (older ones are dropped; fork points older than that merge from 0). */
  lineage_segments: number
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
  assert(config.lineage_segments >= 2, 'lineage_segments must be >= 2')
}
