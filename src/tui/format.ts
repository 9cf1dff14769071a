/** Pure text formatting for the UI: sizes, durations, ages, snapshot ids, progress bars. */

const UNITS = ['B', 'KB', 'MB', 'GB', 'TB']

/** 1536 -> "1.5 KB" (powers of 1024, one decimal below 10 units). */
export function formatBytes(size_bytes: number): string {
  let value = Math.max(0, size_bytes)
  let unit = 0
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024
    unit++
  }
  const digits = unit === 0 || value >= 10 ? 0 : 1
  return `${value.toFixed(digits)} ${UNITS[unit]}`
}

/** A duration for people: "850 ms", "4.2 s", "3m05s", "2h07m". */
export function formatDuration(duration_ms: number): string {
  const ms = Math.max(0, Math.round(duration_ms))
  if (ms < 1000) return `${ms} ms`
  if (ms < 10_000) return `${(ms / 1000).toFixed(1)} s`
  const s = Math.floor(ms / 1000)
  if (s < 60) return `${s} s`
  const m = Math.floor(s / 60)
  if (m < 60) return `${m}m${String(s % 60).padStart(2, '0')}s`
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`
}

/** Wall-clock time of day with milliseconds, local time: "12:03:04.512". */
export function formatClock(time_ms: number): string {
  const d = new Date(time_ms)
  const two = (n: number) => String(n).padStart(2, '0')
  return `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}.${String(d.getMilliseconds()).padStart(3, '0')}`
}

/** Snapshot ids are `writer:term:seq`; the writer is a 64-hex key people cannot read, so show term:seq. */
export function shortSnapshot(id: string | null): string {
  if (id === null) return '-'
  const parts = id.split(':')
  return parts.length === 3 ? `${parts[1]}:${parts[2]}` : id.slice(0, 12)
}

export function snapshotWriter(id: string): string | null {
  const parts = id.split(':')
  return parts.length === 3 ? parts[0]! : null
}

export function shortKey(key: string): string {
  return key.slice(0, 8)
}

/** `[█████░░░░░]` with `width` cells inside the brackets; fraction is clamped to [0, 1]. */
export function progressBar(fraction: number, width: number): string {
  const f = Number.isFinite(fraction) ? Math.min(1, Math.max(0, fraction)) : 0
  const filled = Math.round(f * width)
  return `[${'█'.repeat(filled)}${'░'.repeat(width - filled)}]`
}

/** Cut or pad to exactly `width` characters (with an ellipsis when cut). */
export function padCell(text: string, width: number): string {
  if (width <= 0) return ''
  if (text.length <= width) return text.padEnd(width)
  return width === 1 ? '…' : `${text.slice(0, width - 1)}…`
}
