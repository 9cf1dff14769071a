import { describe, expect, it } from 'vitest'
import { readMboxWithPython } from '../helpers/python-mbox.ts'
import { localFederations } from './fixtures.ts'
import { percentile, type ZeroLossOutcome, zeroLossRun } from './zero-loss-run.ts'

const startFederation = localFederations()

const KILL_RUNS = 30
const STOP_RUNS = 5
const first_seed = Date.now() % 1_000_000

/** The same judgement through Python's mailbox module (an mbox reader that is not ours). */
async function checkWithPython(o: ZeroLossOutcome): Promise<void> {
  const counts = new Map<string, number>()
  for (const m of await readMboxWithPython(o.mailbox_path))
    if (m.subject) counts.set(m.subject, (counts.get(m.subject) ?? 0) + 1)
  expect(o.acked_numbers.filter((n) => counts.get(`zl-${n}`) !== 1)).toEqual([])
  expect([...counts].filter(([, c]) => c > 1)).toEqual([])
}

function report(what: string, seed: number, o: ZeroLossOutcome): void {
  console.log(
    `${what} (seed ${seed}): acked ${o.acked} of ${o.attempted}, lost ${o.lost.length} ${JSON.stringify(o.lost)}, ` +
      `duplicated ${o.duplicated.length}, p50 ${percentile(o.latency_ms, 50).toFixed(0)} ms, ` +
      `p99 ${percentile(o.latency_ms, 99).toFixed(0)} ms, faults ${JSON.stringify(o.faults)}`,
  )
}

/**
 * The proof: 30 runs with one SIGKILL of the server each, at a random moment (so some land
 * between a capture and its store or replication: `mid_snapshot` in the report), and runs where the
 * server is frozen (SIGSTOP) instead, then resumed. Every run: no acknowledged mail lost, none twice.
 */
describe('zero-loss mode under faults (output_commit k=1, real nodes)', () => {
  for (let run = 0; run < KILL_RUNS; run++) {
    it(`SIGKILL run ${run + 1} of ${KILL_RUNS}`, async () => {
      const seed = first_seed + run
      const outcome = await zeroLossRun(startFederation, { faults: ['SIGKILL'], seed })
      report(`kill ${run + 1}`, seed, outcome)
      expect(outcome.acked).toBeGreaterThanOrEqual(10)
      expect(outcome.lost).toEqual([])
      expect(outcome.duplicated).toEqual([])
      await checkWithPython(outcome)
    }, 240_000)
  }

  for (let run = 0; run < STOP_RUNS; run++) {
    it(`SIGSTOP run ${run + 1} of ${STOP_RUNS}: frozen server, then resumed`, async () => {
      const seed = first_seed + 1000 + run
      const outcome = await zeroLossRun(startFederation, { faults: ['SIGSTOP'], seed })
      report(`stop ${run + 1}`, seed, outcome)
      expect(outcome.acked).toBeGreaterThanOrEqual(13)
      expect(outcome.lost).toEqual([])
      expect(outcome.duplicated).toEqual([])
      await checkWithPython(outcome)
    }, 300_000)
  }
})
