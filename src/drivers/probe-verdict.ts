import type { Logger } from '../../lib/log.ts'
import type { DriverEvent } from './driver.ts'

/** Probe interval until the service first answers, so a restore's "answering" is seen within 100 ms. */
export const STARTING_PROBE_INTERVAL_MS = 100

/** What a driver keeps per started service about its probes. */
export interface ProbedService {
  answering: boolean
  answered_once: boolean
  /** performance.now() at the start, for start-to-answering. */
  started_ms: number
}

export interface ProbeVerdict {
  /** The transition to report, if any: answering (first time or again) or probe-failed. */
  event: DriverEvent | null
  next_probe_ms: number
}

/**
 * Applies one probe's outcome to a running service (both drivers): only transitions are reported and
 * logged; an outcome that is not meaningful (the service was paused for a capture meanwhile) changes
 * nothing. `reason` is null when the probe passed.
 */
export function judgeProbe(
  service: ProbedService,
  outcome: { meaningful: boolean; reason: string | null },
  options: { what: string; log: Logger; probe_interval_ms: number },
): ProbeVerdict {
  const { what, log } = options
  let event: DriverEvent | null = null
  if (outcome.meaningful && outcome.reason === null && !service.answering) {
    service.answering = true
    if (!service.answered_once) {
      service.answered_once = true
      const start_to_answering_ms = Math.round(performance.now() - service.started_ms)
      log.info(
        { event: 'service_answering', start_to_answering_ms },
        `${what} answering after ${start_to_answering_ms} ms`,
      )
    } else log.info({ event: 'service_answering' }, `${what} answering again`)
    event = { kind: 'answering' }
  } else if (outcome.meaningful && outcome.reason !== null && service.answering) {
    service.answering = false
    log.warn({ event: 'probe_failed', reason: outcome.reason }, `${what} probe failed: ${outcome.reason}`)
    event = { kind: 'probe-failed', reason: outcome.reason }
  }
  const interval_ms = service.answering ? options.probe_interval_ms : STARTING_PROBE_INTERVAL_MS
  return { event, next_probe_ms: Math.min(interval_ms, options.probe_interval_ms) }
}
