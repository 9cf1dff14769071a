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

/**
 * Unordered work with a bounded number of tasks in flight (e.g. positioned writes that may finish in any
 * order). A failed task fails the next `add` or `drain`.
 */
export class InFlight {
  private readonly tasks = new Set<Promise<void>>()
  private failure: { error: unknown } | undefined

  constructor(private readonly size: number) {
    if (size < 1) throw new Error('in-flight limit must be >= 1')
  }

  async add(task: Promise<void>): Promise<void> {
    const tracked = task.then(
      () => {
        this.tasks.delete(tracked)
      },
      (error: unknown) => {
        this.tasks.delete(tracked)
        this.failure ??= { error }
      },
    )
    this.tasks.add(tracked)
    while (this.tasks.size >= this.size) await Promise.race(this.tasks)
    if (this.failure) throw this.failure.error
  }

  async drain(): Promise<void> {
    await Promise.all(this.tasks)
    if (this.failure) throw this.failure.error
  }
}
