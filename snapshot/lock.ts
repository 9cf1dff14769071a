/**
 * Shared/exclusive lock for one store in one process: writes and reads share, gc is exclusive, so gc
 * never deletes a blob whose manifest is still being written.
 */
export class SharedExclusiveLock {
  private shared = 0
  private exclusive = false
  private waiters: (() => void)[] = []

  private wake(): void {
    const waiters = this.waiters
    this.waiters = []
    for (const wake of waiters) wake()
  }

  async withShared<T>(fn: () => Promise<T>): Promise<T> {
    while (this.exclusive) await new Promise<void>((resolve) => this.waiters.push(resolve))
    this.shared++
    try {
      return await fn()
    } finally {
      this.shared--
      this.wake()
    }
  }

  async withExclusive<T>(fn: () => Promise<T>): Promise<T> {
    while (this.exclusive || this.shared > 0) await new Promise<void>((resolve) => this.waiters.push(resolve))
    this.exclusive = true
    try {
      return await fn()
    } finally {
      this.exclusive = false
      this.wake()
    }
  }
}
