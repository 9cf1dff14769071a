/**
 * Ordered work with a bounded number of tasks in flight: memory stays constant however long the input,
 * results come out in submission order. A task that fails fails `drain`/`push` at its turn.
 */
export class OrderedWindow<T> {
  private readonly queue: Promise<T>[] = []

  constructor(
    private readonly size: number,
    private readonly consume: (value: T) => Promise<void> | void,
  ) {
    if (size < 1) throw new Error('window size must be >= 1')
  }

  async push(task: Promise<T>): Promise<void> {
    // Observed later in order; this only keeps an early failure from being reported as unhandled.
    task.catch(() => {})
    this.queue.push(task)
    while (this.queue.length >= this.size) await this.consume(await this.queue.shift()!)
  }

  async drain(): Promise<void> {
    while (this.queue.length > 0) await this.consume(await this.queue.shift()!)
  }
}
