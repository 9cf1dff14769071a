import { describe, expect, it } from 'vitest'
import { readMboxWithPython } from '../helpers/python-mbox.ts'
import { localFederations } from './fixtures.ts'
import { percentile, zeroLossRun } from './zero-loss-run.ts'

const startFederation = localFederations()

/**
 * Planned moves under continuous load in zero-loss mode: mail flows through the front door of a node
 * that never moves, and the server runs `sustain leave` twice (each successor leaves in turn). The
 * client judges: every mail it got a 250 for is in the final server's mailbox once, read by Python's
 * mailbox module (no Sustain code).
 */
describe('zero-loss mode: leave under continuous mail (output_commit k=1, real nodes)', () => {
  it('two leaves of the server in a row: each exits 0, no acknowledged mail lost or doubled', async () => {
    const seed = Date.now() % 1_000_000
    const outcome = await zeroLossRun(startFederation, { faults: ['leave', 'leave'], seed })
    console.log(
      `zero-loss leave (seed ${seed}): acked ${outcome.acked} of ${outcome.attempted}, lost ${JSON.stringify(outcome.lost)}, ` +
        `duplicated ${outcome.duplicated.length}, p50 ${percentile(outcome.latency_ms, 50).toFixed(0)} ms, ` +
        `p99 ${percentile(outcome.latency_ms, 99).toFixed(0)} ms, leaves ${JSON.stringify(outcome.leaves.map((l) => l.code))}`,
    )
    expect(outcome.leaves.map((l) => l.code)).toEqual([0, 0])
    expect(outcome.acked).toBeGreaterThanOrEqual(15)
    expect(outcome.lost).toEqual([])
    expect(outcome.duplicated).toEqual([])
    const counts = new Map<string, number>()
    for (const m of await readMboxWithPython(outcome.mailbox_path))
      if (m.subject) counts.set(m.subject, (counts.get(m.subject) ?? 0) + 1)
    expect(outcome.acked_numbers.filter((n) => counts.get(`zl-${n}`) !== 1)).toEqual([])
  }, 300_000)
})
