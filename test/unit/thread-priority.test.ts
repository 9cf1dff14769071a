import { once } from 'node:events'
import { getPriority } from 'node:os'
import { Worker } from 'node:worker_threads'
import { describe, expect, it } from 'vitest'
import { threadId } from '../../lib/thread-priority.ts'

interface Seen {
  priority: 'rr' | 'nice' | 'none'
  policy: number
  nice: number
  main_policy: number
  main_nice: number
}

async function raiseInWorker(mode: string): Promise<Seen> {
  const worker = new Worker(new URL('./fixtures/thread-priority-worker.mjs', import.meta.url), {
    workerData: { main_tid: threadId() },
    env: { ...process.env, SUSTAIN_CONTROL_PRIORITY: mode },
  })
  const [seen] = (await once(worker, 'message')) as [Seen]
  await worker.terminate()
  return seen
}

const SCHED_OTHER = 0
const SCHED_RR = 2

describe('raiseThreadPriority (the control plane thread ahead of CPU-bound work)', () => {
  it('raises only the calling thread: SCHED_RR where allowed, else nice -10, else nothing', async () => {
    const seen = await raiseInWorker('rr')
    if (seen.priority === 'rr') expect(seen.policy).toBe(SCHED_RR)
    if (seen.priority === 'nice')
      expect({ policy: seen.policy, nice: seen.nice }).toEqual({ policy: SCHED_OTHER, nice: -10 })
    // The main thread (replication, snapshots, the service's start) keeps its place.
    expect({ main_policy: seen.main_policy, main_nice: seen.main_nice }).toEqual({
      main_policy: SCHED_OTHER,
      main_nice: getPriority(),
    })
  })

  it('leaves the thread as it was when SUSTAIN_CONTROL_PRIORITY=none', async () => {
    const seen = await raiseInWorker('none')
    expect({ priority: seen.priority, policy: seen.policy, nice: seen.nice }).toEqual({
      priority: 'none',
      policy: SCHED_OTHER,
      nice: getPriority(),
    })
  })
})
