import type { Logger } from '../../lib/log.ts'
import type { CoreEffect } from '../core/io.ts'

type Timeline = Extract<CoreEffect, { type: 'timeline' }>

/**
 * One structured record per timeline stage (role change, fault seen, detected, elected, snapshot
 * collected, restored, service answering, merge started/finished). The logger stamps `mono_ms`, so
 * durations between stages come straight from these records, in the log and in benchmarks alike.
 */
export function logTimeline(log: Logger, effect: Timeline, extra: Record<string, unknown> = {}): void {
  const level = effect.name === 'fault_seen' || effect.name === 'merge_failed' ? 'warn' : 'info'
  log[level](
    { event: effect.name, role: effect.role, term: effect.term, ...effect.fields, ...extra },
    effect.name,
  )
}
