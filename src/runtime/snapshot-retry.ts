/** Longest wait between snapshot attempts while they keep failing, in snapshot intervals. */
const MAX_BACKOFF_INTERVALS = 8

export type SnapshotAttempt =
  | { take: true; fresh_base: boolean }
  | { take: false; retry_in_ms: number; reason: string }

export interface SnapshotFailures {
  consecutive: number
  last_reason: string | null
  last_ms: number | null
}

/**
 * Never the same failing snapshot twice in a row: after a failure the next attempt encodes a fresh base
 * (no delta against whatever base broke it: missing or corrupt base blobs, a stale layout); when even
 * that fails the attempts back off (2, 4, ... up to MAX_BACKOFF_INTERVALS intervals) instead of pausing
 * the service every interval for nothing. A final snapshot (hand-over) is never skipped.
 */
export class SnapshotRetry {
  private consecutive = 0
  private last_reason: string | null = null
  private last_ms: number | null = null

  constructor(private readonly interval_ms: number) {}

  next(now_ms: number, final: boolean): SnapshotAttempt {
    if (this.consecutive === 0) return { take: true, fresh_base: false }
    const wait_ms = this.backoffMs()
    if (!final && this.last_ms !== null && now_ms - this.last_ms < wait_ms) {
      return {
        take: false,
        retry_in_ms: Math.round(this.last_ms + wait_ms - now_ms),
        reason: `backing off after ${this.consecutive} failed snapshots (last: ${this.last_reason})`,
      }
    }
    return { take: true, fresh_base: true }
  }

  failed(reason: string, now_ms: number): void {
    this.consecutive++
    this.last_reason = reason
    this.last_ms = now_ms
  }

  succeeded(): void {
    this.consecutive = 0
  }

  get failures(): SnapshotFailures {
    return { consecutive: this.consecutive, last_reason: this.last_reason, last_ms: this.last_ms }
  }

  /** 0 after one failure (the fresh-base attempt comes at the next interval), then 2, 4, 8 intervals. */
  private backoffMs(): number {
    if (this.consecutive < 2) return 0
    return this.interval_ms * Math.min(2 ** (this.consecutive - 1), MAX_BACKOFF_INTERVALS)
  }
}
