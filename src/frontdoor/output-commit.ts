import type { OutputGate } from './output-gate.ts'

export interface OutputCommitStats {
  /** Bytes read from the service and not yet released, over every connection. */
  held_bytes: number
  held_chunks: number
  /** Client connections whose output passes the gate now. */
  connections: number
  released_chunks: number
  /** Captures that found the state of a snapshot already taken (their output went with it). */
  covered_captures: number
  last_release_ms_ago: number | null
  /** Freeze to release of the last release: the latency output commit added to it. */
  last_commit_ms: number | null
}

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
  /** When output was last released (performance.now()), and its freeze-to-release time. */
  private last_release: { at_ms: number; commit_ms: number } | null = null
  /** Captures whose output went with an earlier snapshot (nothing changed), since start. */
  private covered_ = 0

  constructor(private readonly onWaiting: () => void) {}

  get released(): number {
    return this.released_
  }

  /** Chunks read and not yet released, over every connection. */
  get waiting(): number {
    return this.seq - this.released_
  }

  /** What `sustain status` shows: what is held now, and the last release. */
  stats(): OutputCommitStats {
    let held_bytes = 0
    for (const gate of this.gates) held_bytes += gate.heldBytes
    const last = this.last_release
    return {
      held_bytes,
      held_chunks: this.waiting,
      connections: this.gates.size,
      released_chunks: this.released_,
      covered_captures: this.covered_,
      last_release_ms_ago: last === null ? null : Math.round(performance.now() - last.at_ms),
      last_commit_ms: last === null ? null : Math.round(last.commit_ms),
    }
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
      this.covered_ += 1
      return null
    }
    if (by !== this.released_id) return false
    this.marks.delete(id)
    this.covered_ += 1
    return this.releaseTo(mark)
  }

  private releaseTo(mark: { seq: number; frozen_ms: number }): { chunks: number; commit_ms: number } | null {
    if (mark.seq <= this.released_) return null
    const before = this.released_
    this.released_ = mark.seq
    for (const gate of this.gates) gate.releaseUpTo(mark.seq)
    const now = performance.now()
    this.last_release = { at_ms: now, commit_ms: now - mark.frozen_ms }
    return { chunks: mark.seq - before, commit_ms: now - mark.frozen_ms }
  }
}
