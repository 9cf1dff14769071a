/**
 * Durable state before messages, as raft does: a message never leaves before every state write queued
 * ahead of it is on disk (fsync'd). A node that claims a term and crashes right after its claim went out
 * finds that term when it comes back, so it can never claim the same term twice.
 *
 * Messages with no write ahead of them go at once (the common case: most events persist nothing); the
 * rest wait, in order, behind the writes. A write that fails stops everything queued behind it: the
 * messages are dropped and `onWriteFailed` decides (the runtime stops the node).
 */
export class DurableOutbox<State> {
  private queue: Promise<void> = Promise.resolve()
  /** Writes and messages queued and not yet done. */
  private pending = 0
  private failed = false

  constructor(
    private readonly write: (state: State) => Promise<void>,
    private readonly onWriteFailed: (error: unknown) => void,
  ) {}

  /** Queue a write of `state` (writes happen one at a time, in order). */
  persist(state: State): void {
    this.enqueue(async () => {
      try {
        await this.write(state)
      } catch (error) {
        this.failed = true
        this.onWriteFailed(error)
      }
    })
  }

  /** Send now if nothing is queued, else once every write queued before it is durable. */
  send(message: () => void): void {
    if (this.failed) return
    if (this.pending === 0) {
      message()
      return
    }
    this.enqueue(async () => {
      if (!this.failed) message()
    })
  }

  /** Resolves when everything queued so far is done. */
  drained(): Promise<void> {
    return this.queue
  }

  private enqueue(work: () => Promise<void>): void {
    this.pending += 1
    this.queue = this.queue.then(work).finally(() => {
      this.pending -= 1
    })
  }
}
