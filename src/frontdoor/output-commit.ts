import type { OutputGate } from './output-gate.ts'

/**
 * The server's side of output commit (ARCHITECTURE.md, Output commit). Every chunk the service sends a
 * client gets the next number of one counter, shared by all connections, as it reaches its gate. A
 * capture notes the counter while it holds the service frozen: every chunk numbered up to that mark was
 * read before the freeze, so it left the service before the freeze and its cause is in that snapshot.
 * When the core says the snapshot is stored on k candidates, every chunk up to its mark is released.
 * A chunk read during a capture but after its mark waits for the next one (it may be in this snapshot
 * or not: only a later freeze is sure to cover it).
 */
export class OutputCommit {
  /** Number of the last chunk read from any service connection. */
  private seq = 0
  /** Chunks numbered up to this may go to their clients. */
  private released_ = 0
  /** Capture mark of each snapshot taken (and when it froze), by snapshot id, until released or superseded. */
  private readonly marks = new Map<string, { seq: number; frozen_ms: number }>()
  private readonly gates = new Set<OutputGate>()
  /** A capture was asked for output that arrived since the last freeze. */
  private asked = false
  /** The newest snapshot whose output was released (a capture it covers releases at once). */
  private released_id: string | null = null

  constructor(private readonly onWaiting: () => void) {}

  get released(): number {
    return this.released_
  }

  /** Chunks read and not yet released, over every connection. */
  get waiting(): number {
    return this.seq - this.released_
  }

  attach(gate: OutputGate): void {
    this.gates.add(gate)
  }

  detach(gate: OutputGate): void {
    this.gates.delete(gate)
  }

  /** Numbers a chunk a gate just read; the first since the last freeze asks for a capture. */
  take(): number {
    this.seq += 1
    if (!this.asked) {
      this.asked = true
      this.onWaiting()
    }
    return this.seq
  }

  /** Called by the capture of snapshot `id` while the service is frozen (nothing it sends can arrive). */
  frozen(id: string): void {
    this.marks.set(id, { seq: this.seq, frozen_ms: performance.now() })
    this.asked = false
  }

  /**
   * `id` is stored on k candidates: release what was read before its freeze. Returns the chunks released
   * and the time from the freeze (null: an unknown id, or nothing new), for the log.
   */
  release(id: string): { chunks: number; commit_ms: number } | null {
    const mark = this.marks.get(id)
    if (mark === undefined) return null
    for (const [other, m] of this.marks) if (m.seq <= mark.seq) this.marks.delete(other)
    this.released_id = id
    return this.releaseTo(mark)
  }

  /**
   * Capture `id` froze the service and found the state snapshot `by` holds (nothing changed since its
   * capture): what was read before this freeze is covered by `by` too. Released at once when `by` was
   * released; else `by`'s mark moves up to this freeze, released with it. False (nothing changed here)
   * when `by` is neither: the caller stores a snapshot of its own instead.
   */
  cover(id: string, by: string): { chunks: number; commit_ms: number } | null | false {
    const mark = this.marks.get(id)
    if (mark === undefined) return false
    const target = this.marks.get(by)
    if (target !== undefined) {
      this.marks.delete(id)
      target.seq = Math.max(target.seq, mark.seq)
      return null
    }
    if (by !== this.released_id) return false
    this.marks.delete(id)
    return this.releaseTo(mark)
  }

  private releaseTo(mark: { seq: number; frozen_ms: number }): { chunks: number; commit_ms: number } | null {
    if (mark.seq <= this.released_) return null
    const before = this.released_
    this.released_ = mark.seq
    for (const gate of this.gates) gate.releaseUpTo(mark.seq)
    return { chunks: mark.seq - before, commit_ms: performance.now() - mark.frozen_ms }
  }
}
