/** Median and spread of a sample, named for what the sample count supports. */
export interface Spread {
  n: number
  median: number
  min: number
  max: number
  /** Only with at least 100 samples: below that the tail is the maximum, and is called so. */
  p99: number | null
}

export function spread(samples: readonly number[], digits = 3): Spread {
  if (samples.length === 0) throw new Error('spread of an empty sample')
  const sorted = [...samples].sort((a, b) => a - b)
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!
  const mid = sorted.length >> 1
  const median = sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
  const r = (x: number) => Number(x.toFixed(digits))
  return {
    n: sorted.length,
    median: r(median),
    min: r(sorted[0]!),
    max: r(sorted.at(-1)!),
    p99: sorted.length >= 100 ? r(at(0.99)) : null,
  }
}

/** "median (min-max)" for a table cell. */
export function showSpread(s: Spread | undefined | null): string {
  if (!s) return '-'
  return s.n === 1 ? `${s.median}` : `${s.median} (${s.min}-${s.max})`
}

/**
 * Order of the contenders in round `round`: rotated each round so nobody always goes first (the first
 * one meets a colder cache, the last one a hotter machine).
 */
export function rotation<T>(contenders: readonly T[], round: number): T[] {
  const n = contenders.length
  return contenders.map((_, i) => contenders[(i + round) % n]!)
}
