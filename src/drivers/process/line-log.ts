import type { Readable } from 'node:stream'
import type { Logger } from '../../../lib/log.ts'

export interface LineLogLimits {
  /** Longer lines are cut (the rest of the line is dropped, not logged as another line). */
  max_line_bytes: number
  /** Lines per second a chatty service may log; the excess is counted and reported, not logged. */
  max_lines_per_s: number
}

export const DEFAULT_LINE_LOG_LIMITS: LineLogLimits = { max_line_bytes: 4096, max_lines_per_s: 200 }

/**
 * Logs a service's output stream line by line with bounded memory (one partial line of at most
 * max_line_bytes) and a bounded rate, so a runaway service cannot flood the node's log.
 */
export function logLines(
  stream: Readable,
  log: Logger,
  name: 'stdout' | 'stderr',
  limits: LineLogLimits = DEFAULT_LINE_LOG_LIMITS,
): void {
  let partial: Buffer[] = []
  let partial_bytes = 0
  let cut = false
  let window_start_ms = 0
  let in_window = 0
  let dropped = 0
  const level = name === 'stderr' ? 'warn' : 'info'

  const emit = (line: string) => {
    const now = Date.now()
    if (now - window_start_ms >= 1000) {
      if (dropped > 0)
        log.warn({ stream: name, dropped_lines: dropped }, `service ${name}: ${dropped} lines dropped`)
      window_start_ms = now
      in_window = 0
      dropped = 0
    }
    if (in_window >= limits.max_lines_per_s) {
      dropped++
      return
    }
    in_window++
    log[level]({ stream: name }, line)
  }
  const flush = () => {
    if (partial_bytes === 0 && !cut) return
    const line = Buffer.concat(partial).toString('utf8').replace(/\r$/, '')
    emit(cut ? `${line}…` : line)
    partial = []
    partial_bytes = 0
    cut = false
  }
  const take = (piece: Buffer) => {
    const room = limits.max_line_bytes - partial_bytes
    if (piece.length > room) cut = true
    const kept = piece.subarray(0, Math.max(0, room))
    if (kept.length > 0) {
      partial.push(kept)
      partial_bytes += kept.length
    }
  }

  stream.on('data', (chunk: Buffer) => {
    let at = 0
    for (let nl = chunk.indexOf(10, at); nl !== -1; nl = chunk.indexOf(10, at)) {
      take(chunk.subarray(at, nl))
      flush()
      at = nl + 1
    }
    if (at < chunk.length) take(chunk.subarray(at))
  })
  stream.on('end', () => {
    flush()
    if (dropped > 0)
      log.warn({ stream: name, dropped_lines: dropped }, `service ${name}: ${dropped} lines dropped`)
  })
}
