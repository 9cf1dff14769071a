/**
 * The real-bytes run of seed 004's planner (bench/move/precopy-real.ts) on a tiny set: whatever the
 * timing on a loaded machine, every byte the sender counts reaches the receiver and, after the final
 * copy, the destination equals the source byte for byte (checked by reading both directories, not by
 * asking the planner what it sent).
 */
import { describe, expect, it } from 'vitest'
import { runPlannedReal, scaledTermination, thinned } from '../../bench/move/precopy-real.ts'
import { fixedSet } from '../../bench/move/precopy-sim.ts'

describe('seed 004 with real bytes on a TCP stream', () => {
  it('a tiny fixed set moves whole: destination equals source, receiver got pre-copy + final', async () => {
    const every = 500 // 22 files of 200 KB: 2 read-only, 10 at p=0.2, 10 at p=0.8
    const files = thinned(fixedSet(), every)
    expect(files.filter((f) => f.read_only)).toHaveLength(2)
    const r = await runPlannedReal(files, {
      mbps: 100,
      period_s: 0.2,
      window_periods: 5,
      seed: 4,
      termination: scaledTermination(every),
    })
    expect(r.identical).toBe(true)
    expect(r.received_bytes).toBe(r.precopy_bytes + r.final_bytes)
    expect(r.precopy_bytes + r.final_bytes).toBeGreaterThanOrEqual(r.set_bytes)
    expect(r.final_bytes).toBeLessThanOrEqual(r.set_bytes - 2 * 200_000)
  })
})
