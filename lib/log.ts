import { performance } from 'node:perf_hooks'
import pino, { type DestinationStream, type Logger } from 'pino'

export type { Logger } from 'pino'

/**
 * Every record carries wall time and `mono_ms`, a monotonic clock in milliseconds since the process
 * started (performance.now), so durations between timeline stages never jump with NTP.
 */
function timestamp(): string {
  return `,"time":${Date.now()},"mono_ms":${performance.now().toFixed(3)}`
}

export interface LoggerOptions {
  name?: string
  level?: pino.LevelWithSilent
  destination?: DestinationStream
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const config = { name: options.name ?? 'sustain', level: options.level ?? 'info', timestamp }
  return options.destination ? pino(config, options.destination) : pino(config, pino.destination(2))
}
