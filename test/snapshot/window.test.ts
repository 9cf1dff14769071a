import { describe, expect, it } from 'vitest'
import { InFlight } from '../../snapshot/window.ts'

function deferred() {
  let resolve!: () => void
  let reject!: (error: Error) => void
  const promise = new Promise<void>((res, rej) => {
    resolve = res
    reject = rej
  })
  return { promise, resolve, reject }
}

describe('InFlight', () => {
  it('holds at most `size - 1` tasks after add returns, and drain waits for all', async () => {
    const inFlight = new InFlight(2)
    const a = deferred()
    const b = deferred()
    await inFlight.add(a.promise)
    let second = false
    const adding = inFlight.add(b.promise).then(() => {
      second = true
    })
    await Promise.resolve()
    expect(second).toBe(false)
    b.resolve()
    await adding
    expect(second).toBe(true)
    let drained = false
    const draining = inFlight.drain().then(() => {
      drained = true
    })
    await Promise.resolve()
    expect(drained).toBe(false)
    a.resolve()
    await draining
    expect(drained).toBe(true)
  })

  it('a failed task fails the next add or drain', async () => {
    const inFlight = new InFlight(4)
    const a = deferred()
    await inFlight.add(a.promise)
    a.reject(new Error('disk full'))
    await expect(inFlight.drain()).rejects.toThrow('disk full')
    await expect(inFlight.add(Promise.resolve())).rejects.toThrow('disk full')
  })
})
