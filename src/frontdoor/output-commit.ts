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
  /** Capture mark of each snapshot taken, by snapshot id, until released or superseded. */
  private readonly marks = new Map<string, number>()
  private readonly gates = new Set<OutputGate>()
  /** A capture was asked for output that arrived since the last freeze. */
  private asked = false

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
    this.marks.set(id, this.seq)
    this.asked = false
  }

  /** `id` is stored on k candidates: release what was read before its freeze. Unknown ids do nothing. */
  release(id: string): number {
    const mark = this.marks.get(id)
    if (mark === undefined) return 0
    for (const [other, m] of this.marks) if (m <= mark) this.marks.delete(other)
    if (mark <= this.released_) return 0
    const before = this.released_
    this.released_ = mark
    for (const gate of this.gates) gate.releaseUpTo(mark)
    return mark - before
  }
}
