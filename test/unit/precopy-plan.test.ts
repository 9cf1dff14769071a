import { describe, expect, it } from 'vitest'
import { compare, fixedSet, runFixedOrder, runPlanned, TokenBucket } from '../../bench/move/precopy-sim.ts'
import {
  DEFAULT_TERMINATION,
  plateaued,
  precopyOrder,
  probabilitiesFromHistory,
  shouldStop,
  updateExpectation,
} from '../../src/move/precopy-plan.ts'

const unit = (id: string, size_bytes: number, update_probability: number, read_only = false) => ({
  id,
  size_bytes,
  read_only,
  update_probability,
})

describe('pre-copy order (seed 004)', () => {
  it('read-only first, then ascending update expectation = probability x size', () => {
    const units = [
      unit('hot-small', 100, 0.8), // 80
      unit('cold-big', 1000, 0.2), // 200
      unit('ro-big', 5000, 0.9, true), // read-only: never resent, whatever its history says
      unit('warm-small', 100, 0.5), // 50
      unit('never', 300, 0), // 0
    ]
    expect(precopyOrder(units).map((u) => u.id)).toEqual([
      'ro-big',
      'never',
      'warm-small',
      'hot-small',
      'cold-big',
    ])
    expect(updateExpectation(units[1]!)).toBe(200)
    expect(updateExpectation(units[2]!)).toBe(0)
  })

  it('refuses a probability outside 0..1', () => {
    expect(() => updateExpectation(unit('x', 1, 1.5))).toThrow(/not in 0..1/)
    expect(() => precopyOrder([unit('x', 1, Number.NaN)])).toThrow(/not in 0..1/)
  })

  it('probabilities from history: the fraction of periods a unit changed in', () => {
    const p = probabilitiesFromHistory([new Set(['a', 'b']), new Set(['a']), new Set(), new Set(['a'])])
    expect(p.get('a')).toBe(0.75)
    expect(p.get('b')).toBe(0.25)
    expect(p.has('c')).toBe(false)
  })
})

describe('termination', () => {
  const progress = (untransferred_bytes: number[], over = {}) => ({
    untransferred_bytes,
    untransferred_units: 1000,
    read_only_untransferred_units: 0,
    rounds: untransferred_bytes.length,
    sent_bytes: 0,
    image_bytes: 1e9,
    ...over,
  })
  it("seed 004's rule: newer half's mean within 99-101 % of the older half's, over the last beta", () => {
    const policy = { ...DEFAULT_TERMINATION, beta: 4 }
    expect(plateaued([100, 100, 100], policy)).toBe(false) // fewer than beta measurements
    expect(plateaued([500, 100, 100, 100.5, 99.5], policy)).toBe(true) // only the last 4 count
    expect(plateaued([100, 100, 98, 97], policy)).toBe(false) // still shrinking: 97.5 %
    expect(plateaued([100, 100, 101, 101], policy)).toBe(true)
    expect(plateaued([100, 100, 102, 102], policy)).toBe(false) // growing past 101 %
    expect(() => plateaued([1, 2, 3], { ...policy, beta: 3 })).toThrow(/even/)
  })
  it('classic limits beside it: under 50 dirty units, 29 rounds, 3x the image sent', () => {
    const shrinking = [1000, 900, 800, 700, 600, 500, 400]
    expect(shouldStop(progress(shrinking))).toBeNull()
    expect(shouldStop(progress(shrinking, { untransferred_units: 49 }))).toBe('few-dirty')
    expect(shouldStop(progress(shrinking, { rounds: 29 }))).toBe('max-rounds')
    expect(shouldStop(progress(shrinking, { sent_bytes: 3e9 }))).toBe('max-sent')
    expect(shouldStop(progress([1000, 1000, 1000, 1000, 1000, 1000]))).toBe('plateau')
  })
  it('nothing stops pre-copy while a read-only unit is unsent (seed 004 sends them all before judging)', () => {
    const left = { read_only_untransferred_units: 1 }
    expect(shouldStop(progress([1000], { ...left, untransferred_units: 3 }))).toBeNull()
    expect(shouldStop(progress([1000, 1000, 1000, 1000, 1000, 1000], left))).toBeNull()
    expect(shouldStop(progress([1000], { ...left, rounds: 40, sent_bytes: 9e9 }))).toBeNull()
    expect(() => shouldStop(progress([1], { read_only_untransferred_units: -1 }))).toThrow(/not >= 0/)
  })
})

describe('the simulated experiment (virtual time)', () => {
  it('a token bucket passes its depth at once, then the rate', () => {
    const link = new TokenBucket(1000, 500)
    expect(link.send(0, 500)).toBe(0)
    expect(link.send(0, 1000)).toBe(1)
    expect(link.send(3, 100)).toBe(3) // refilled while idle
  })
  it('both methods see the same updates and send every file at least once; read-only files once', () => {
    const files = fixedSet().filter((_, i) => i % 20 === 0) // 550 files
    const o = { mbps: 30, period_s: 60, window_periods: 10, bucket_bytes: 65_536, seed: 3 }
    const image = files.reduce((s, f) => s + f.size_bytes, 0)
    const planned = runPlanned(files, o)
    const fixed = runFixedOrder(files, o)
    expect(planned.precopy_bytes + planned.final_bytes).toBeGreaterThanOrEqual(image)
    expect(fixed.precopy_bytes).toBeGreaterThanOrEqual(image)
    expect(fixed.rounds).toBeLessThanOrEqual(10)
    // Deterministic: the same seed gives the same figures.
    expect(runPlanned(files, o)).toEqual(planned)
    // The planner's final copy never holds a read-only file: it went first and never changes.
    expect(planned.final_bytes).toBeLessThanOrEqual(image - 50 * 200_000)
  })
  it('a pass that runs out before its period ends asks the classic limits at once (no idle link)', () => {
    const files = fixedSet().filter((_, i) => i % 20 === 0) // 550 files, 110 MB: 8.8 s at 100 Mbit/s
    const o = { mbps: 100, period_s: 300, window_periods: 10, bucket_bytes: 65_536, seed: 2 }
    const planned = runPlanned(files, o)
    expect(planned.stop).toBe('few-dirty')
    expect(planned.total_s).toBeLessThan(o.period_s)
    expect(planned.final_bytes).toBeLessThan(50 * 200_000)
  })
  it('on the fixed set at 10 Mbit/s the planner sends less during pre-copy than fixed-order pre-copy', () => {
    const c = compare(fixedSet(), {
      mbps: 10,
      period_s: 60,
      window_periods: 10,
      bucket_bytes: 65_536,
      seed: 1,
    })
    expect(c.precopy_reduction_pct).toBeGreaterThan(0)
    expect(c.fixed_order.rounds).toBe(10)
  })
})
