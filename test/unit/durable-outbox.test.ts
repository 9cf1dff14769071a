import { readFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { writeFileAtomic } from '../../lib/atomic-write.ts'
import { DurableOutbox } from '../../src/runtime/durable-outbox.ts'

/** A store whose writes finish when the test says, recording every step in `order`. */
function fakeStore() {
  const order: string[] = []
  const finish: (() => void)[] = []
  const fail: ((error: Error) => void)[] = []
  const write = (term: number) =>
    new Promise<void>((resolve, reject) => {
      order.push(`write ${term} started`)
      finish.push(() => {
        order.push(`write ${term} durable`)
        resolve()
      })
      fail.push(reject)
    })
  const failures: unknown[] = []
  const outbox = new DurableOutbox<number>(write, (error) => failures.push(error))
  const send = (what: string) => outbox.send(() => order.push(`sent ${what}`))
  return { order, finish, fail, failures, outbox, send }
}

const settle = () => new Promise((resolve) => setImmediate(resolve))

describe('DurableOutbox: no message leaves before the state written ahead of it is durable', () => {
  it('with nothing queued, a message goes at once', () => {
    const s = fakeStore()
    s.send('state')
    expect(s.order).toEqual(['sent state'])
  })

  it('a claim waits for its term to be durable, and messages keep their order', async () => {
    const s = fakeStore()
    s.outbox.persist(7)
    s.send('claim 7')
    s.send('state 7')
    await settle()
    expect(s.order).toEqual(['write 7 started']) // nothing sent while the write is under way
    s.finish.shift()!()
    await s.outbox.drained()
    expect(s.order).toEqual(['write 7 started', 'write 7 durable', 'sent claim 7', 'sent state 7'])
    s.send('later')
    expect(s.order.at(-1)).toBe('sent later') // the queue is empty again: at once
  })

  it('a message queued behind two writes waits for both; one sent between them waits for the first only', async () => {
    const s = fakeStore()
    s.outbox.persist(1)
    s.send('a')
    s.outbox.persist(2)
    s.send('b')
    await settle()
    s.finish.shift()!()
    await settle()
    await settle()
    expect(s.order).toEqual(['write 1 started', 'write 1 durable', 'sent a', 'write 2 started'])
    s.finish.shift()!()
    await s.outbox.drained()
    expect(s.order.slice(4)).toEqual(['write 2 durable', 'sent b'])
  })

  it('a failed write reports once and nothing queued behind it, or sent after it, leaves', async () => {
    const s = fakeStore()
    s.outbox.persist(3)
    s.send('claim 3')
    await settle()
    s.fail.shift()!(new Error('disk full'))
    await s.outbox.drained()
    s.send('after')
    expect(s.failures.map((e) => (e as Error).message)).toEqual(['disk full'])
    expect(s.order).toEqual(['write 3 started'])
  })

  it('with the real atomic write, the file already holds the term when the claim is sent', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sustain-outbox-'))
    try {
      const path = join(dir, 'persisted.json')
      const onDisk: unknown[] = []
      const outbox = new DurableOutbox<{ term: number }>(
        (state) => writeFileAtomic(path, JSON.stringify(state)),
        (error) => {
          throw error
        },
      )
      outbox.persist({ term: 5 })
      // What a crash at the moment the claim leaves would find on disk.
      outbox.send(() => onDisk.push(JSON.parse(readFileSync(path, 'utf8'))))
      await outbox.drained()
      expect(onDisk).toEqual([{ term: 5 }])
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})
