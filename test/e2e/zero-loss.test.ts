import { describe, expect, it } from 'vitest'
import { localFederations } from './fixtures.ts'
import { percentile, zeroLossRun } from './zero-loss-run.ts'

const startFederation = localFederations()

describe('zero-loss mode end to end (output_commit k=1, real nodes, real mail service, front door)', () => {
  it('two SIGKILLs of the server under continuous mail: every acknowledged mail is in the new server mailbox once', async () => {
    const seed = Date.now() % 1_000_000
    const outcome = await zeroLossRun(startFederation, { faults: ['SIGKILL', 'SIGKILL'], seed })
    console.log(
      `zero-loss (seed ${seed}): acked ${outcome.acked} of ${outcome.attempted}, lost ${outcome.lost.length}, ` +
        `duplicated ${outcome.duplicated.length}, latency p50 ${percentile(outcome.latency_ms, 50).toFixed(0)} ms ` +
        `p99 ${percentile(outcome.latency_ms, 99).toFixed(0)} ms, faults ${JSON.stringify(outcome.faults)}`,
    )
    expect(outcome.acked).toBeGreaterThanOrEqual(15)
    expect(outcome.lost).toEqual([])
    expect(outcome.duplicated).toEqual([])
  }, 240_000)
})
