/**
 * Connections waiting for a server, oldest first, each with its deadline; at most `max` at once. The
 * caller retries them in order (`take`) and drops those whose deadline passed (`expire`).
 */
export class HoldQueue<T> {
  private readonly entries: { item: T; since_ms: number; deadline_ms: number }[] = []

  constructor(
    private readonly max: number,
    private readonly hold_ms: number,
  ) {}

  get size(): number {
    return this.entries.length
  }

  /** false when full: the caller refuses the connection at once. */
  add(item: T, now_ms: number, since_ms = now_ms): boolean {
    if (this.entries.length >= this.max) return false
    this.entries.push({ item, since_ms, deadline_ms: since_ms + this.hold_ms })
    return true
  }

  remove(item: T): void {
    const i = this.entries.findIndex((e) => e.item === item)
    if (i >= 0) this.entries.splice(i, 1)
  }

  /** Removes and returns every entry whose deadline has passed. */
  expire(now_ms: number): T[] {
    const gone = this.entries.filter((e) => e.deadline_ms <= now_ms)
    for (const e of gone) this.remove(e.item)
    return gone.map((e) => e.item)
  }

  /** Removes and returns every entry (with how long it waited), oldest first. */
  take(now_ms: number): { item: T; held_ms: number; since_ms: number }[] {
    return this.entries
      .splice(0)
      .map((e) => ({ item: e.item, held_ms: now_ms - e.since_ms, since_ms: e.since_ms }))
  }

  items(): T[] {
    return this.entries.map((e) => e.item)
  }
}
