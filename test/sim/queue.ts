/** Min-heap of timed items; ties keep insertion order so a run replays exactly. */
export class EventQueue<T> {
  private readonly heap: Array<{ at_ms: number; seq: number; item: T }> = []
  private seq = 0

  get size(): number {
    return this.heap.length
  }

  push(at_ms: number, item: T): void {
    this.heap.push({ at_ms, seq: this.seq++, item })
    let i = this.heap.length - 1
    while (i > 0) {
      const parent = (i - 1) >> 1
      if (!this.less(i, parent)) break
      this.swap(i, parent)
      i = parent
    }
  }

  peekTime(): number | undefined {
    return this.heap[0]?.at_ms
  }

  pop(): { at_ms: number; item: T } | undefined {
    const top = this.heap[0]
    if (!top) return undefined
    const last = this.heap.pop()!
    if (this.heap.length > 0) {
      this.heap[0] = last
      let i = 0
      for (;;) {
        const l = 2 * i + 1
        const r = l + 1
        let m = i
        if (l < this.heap.length && this.less(l, m)) m = l
        if (r < this.heap.length && this.less(r, m)) m = r
        if (m === i) break
        this.swap(i, m)
        i = m
      }
    }
    return { at_ms: top.at_ms, item: top.item }
  }

  private less(i: number, j: number): boolean {
    const a = this.heap[i]!
    const b = this.heap[j]!
    return a.at_ms < b.at_ms || (a.at_ms === b.at_ms && a.seq < b.seq)
  }

  private swap(i: number, j: number): void {
    const t = this.heap[i]!
    this.heap[i] = this.heap[j]!
    this.heap[j] = t
  }
}
