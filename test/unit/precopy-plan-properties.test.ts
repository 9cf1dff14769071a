/**
 * Properties of seed 004's pre-copy planner (src/move/precopy-plan.ts) and of the simulated experiment,
 * checked over many seeded random inputs (a failure names its case's seed, so it can be replayed).
 * Each property is one the code could break: a lost or duplicated unit, a read-only unit after a
 * written one, an order that depends on the input's order, a plateau rule that reads more than its
 * last β measurements or depends on the unit of volume, a classic limit that un-fires as things grow,
 * a simulation that sends less than the set or loses a stale file.
 */
import { describe, expect, it } from 'vitest'
import { runFixedOrder, runPlanned, type SimFile } from '../../bench/move/precopy-sim.ts'
import {
  DEFAULT_TERMINATION,
  type PrecopyUnit,
  plateaued,
  precopyOrder,
  probabilitiesFromHistory,
  shouldStop,
  updateExpectation,
} from '../../src/move/precopy-plan.ts'

import { seededRandom } from './seeded-random.ts'

const rng = seededRandom

const CASES = 300

function randomUnits(r: () => number): PrecopyUnit[] {
  const n = Math.floor(r() * 60)
  // Few distinct sizes and probabilities, so ties (the tie-break's work) happen often.
  const sizes = [0, 1, 100, 4096, 65_536, 200_000]
  const probabilities = [0, 0.1, 0.2, 0.5, 0.8, 1]
  return Array.from({ length: n }, (_, i) => ({
    id: `u${Math.floor(r() * 1e6)}-${i}`,
    size_bytes: sizes[Math.floor(r() * sizes.length)]!,
    read_only: r() < 0.2,
    update_probability: r() < 0.5 ? probabilities[Math.floor(r() * probabilities.length)]! : r(),
  }))
}

function shuffled<T>(xs: readonly T[], r: () => number): T[] {
  const out = [...xs]
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1))
    ;[out[i], out[j]] = [out[j]!, out[i]!]
  }
  return out
}

describe('precopyOrder: properties over random unit sets', () => {
  it('is a permutation of its input and leaves the input as it was', () => {
    for (let seed = 1; seed <= CASES; seed++) {
      const units = randomUnits(rng(seed))
      const before = units.map((u) => u.id)
      const order = precopyOrder(units)
      expect(
        units.map((u) => u.id),
        `seed ${seed}`,
      ).toEqual(before)
      expect([...order.map((u) => u.id)].sort(), `seed ${seed}`).toEqual([...before].sort())
    }
  })

  it('puts every read-only unit before every written one, whatever its history says', () => {
    for (let seed = 1; seed <= CASES; seed++) {
      const order = precopyOrder(randomUnits(rng(seed)))
      const firstWritten = order.findIndex((u) => !u.read_only)
      if (firstWritten >= 0)
        expect(
          order.slice(firstWritten).some((u) => u.read_only),
          `seed ${seed}`,
        ).toBe(false)
    }
  })

  it('orders written units by ascending update expectation, ties by ascending size', () => {
    for (let seed = 1; seed <= CASES; seed++) {
      const written = precopyOrder(randomUnits(rng(seed))).filter((u) => !u.read_only)
      for (let i = 1; i < written.length; i++) {
        const a = written[i - 1]!
        const b = written[i]!
        const ea = updateExpectation(a)
        const eb = updateExpectation(b)
        expect(ea, `seed ${seed} at ${i}`).toBeLessThanOrEqual(eb)
        if (ea === eb) expect(a.size_bytes, `seed ${seed} at ${i}`).toBeLessThanOrEqual(b.size_bytes)
      }
    }
  })

  it("does not depend on the input's order (a total order: the same plan from any listing)", () => {
    for (let seed = 1; seed <= CASES; seed++) {
      const r = rng(seed)
      const units = randomUnits(r)
      const a = precopyOrder(units).map((u) => u.id)
      const b = precopyOrder(shuffled(units, r)).map((u) => u.id)
      expect(b, `seed ${seed}`).toEqual(a)
    }
  })
})

describe('the termination rules: properties over random histories', () => {
  const randomHistory = (r: () => number) =>
    Array.from({ length: 1 + Math.floor(r() * 12) }, () => Math.floor(r() * 1e9))

  it('the plateau rule reads only the last β measurements and does not depend on their unit', () => {
    for (let seed = 1; seed <= CASES; seed++) {
      const r = rng(seed)
      const beta = 2 * (1 + Math.floor(r() * 4))
      const policy = { ...DEFAULT_TERMINATION, beta }
      const history = randomHistory(r)
      const verdict = plateaued(history, policy)
      // Older measurements in front change nothing once β are there.
      if (history.length >= beta)
        expect(plateaued([...randomHistory(r), ...history], policy), `seed ${seed}`).toBe(verdict)
      // Bytes or kilobytes: a ratio of means (a power of two keeps the floating point exact).
      expect(
        plateaued(
          history.map((x) => x * 1024),
          policy,
        ),
        `seed ${seed}`,
      ).toBe(verdict)
    }
  })

  it('a flat history plateaus once β long; one shrinking by more than 2 % a period never does', () => {
    for (let seed = 1; seed <= CASES; seed++) {
      const r = rng(seed)
      const beta = 2 * (1 + Math.floor(r() * 4))
      const policy = { ...DEFAULT_TERMINATION, beta }
      const level = 1 + Math.floor(r() * 1e9)
      const flat = Array.from({ length: beta + Math.floor(r() * 5) }, () => level)
      expect(plateaued(flat, policy), `seed ${seed}`).toBe(true)
      expect(plateaued(flat.slice(0, beta - 1), policy), `seed ${seed}`).toBe(false)
      const shrink = 0.98 - r() * 0.5
      const falling = Array.from({ length: beta + 3 }, (_, i) => level * shrink ** i)
      expect(plateaued(falling, policy), `seed ${seed} shrink ${shrink}`).toBe(false)
    }
  })

  it('more rounds or more bytes sent never turn a stop into "go on"', () => {
    for (let seed = 1; seed <= CASES; seed++) {
      const r = rng(seed)
      const history = randomHistory(r)
      const progress = {
        untransferred_bytes: history,
        untransferred_units: Math.floor(r() * 200),
        read_only_untransferred_units: r() < 0.8 ? 0 : Math.floor(r() * 5),
        rounds: Math.floor(r() * 40),
        sent_bytes: Math.floor(r() * 4e9),
        image_bytes: 1e9,
      }
      if (shouldStop(progress) === null) continue
      expect(shouldStop({ ...progress, rounds: progress.rounds + 1 }), `seed ${seed}`).not.toBeNull()
      expect(shouldStop({ ...progress, sent_bytes: progress.sent_bytes * 2 }), `seed ${seed}`).not.toBeNull()
    }
  })

  it('probabilities from history lie in (0, 1] and count the periods a unit changed in', () => {
    for (let seed = 1; seed <= CASES; seed++) {
      const r = rng(seed)
      const periods = Array.from({ length: 1 + Math.floor(r() * 10) }, () => {
        const s = new Set<string>()
        for (let i = 0; i < 8; i++) if (r() < 0.4) s.add(`u${i}`)
        return s
      })
      const p = probabilitiesFromHistory(periods)
      for (let i = 0; i < 8; i++) {
        const n = periods.filter((s) => s.has(`u${i}`)).length
        if (n === 0) expect(p.has(`u${i}`), `seed ${seed}`).toBe(false)
        else expect(p.get(`u${i}`), `seed ${seed}`).toBe(n / periods.length)
      }
    }
  })
})

describe('the simulated experiment: conservation over random small sets', () => {
  function randomSet(r: () => number): SimFile[] {
    const n = 20 + Math.floor(r() * 80)
    return Array.from({ length: n }, (_, i) => {
      const read_only = r() < 0.1
      return {
        id: `f${i}`,
        size_bytes: 1000 * (1 + Math.floor(r() * 50)),
        read_only,
        p: read_only ? 0 : r(),
      }
    })
  }

  it('everything is sent at least once, the final copy never exceeds the set, read-only files go once', () => {
    for (let seed = 1; seed <= 40; seed++) {
      const r = rng(seed)
      const files = randomSet(r)
      const image = files.reduce((s, f) => s + f.size_bytes, 0)
      const read_only = files.filter((f) => f.read_only).reduce((s, f) => s + f.size_bytes, 0)
      const o = {
        mbps: [0.1, 0.5, 2][Math.floor(r() * 3)]!,
        period_s: [1, 5, 20][Math.floor(r() * 3)]!,
        window_periods: 1 + Math.floor(r() * 10),
        bucket_bytes: 4096,
        seed,
      }
      const planned = runPlanned(files, o)
      const fixed = runFixedOrder(files, o)
      for (const [name, m] of [
        ['planned', planned],
        ['fixed-order', fixed],
      ] as const) {
        const where = `seed ${seed} ${name} ${JSON.stringify(o)}`
        expect(m.final_bytes, where).toBeLessThanOrEqual(image)
        expect(m.precopy_bytes + m.final_bytes, where).toBeGreaterThanOrEqual(image)
        expect(m.downtime_s, where).toBeCloseTo((m.final_bytes * 8) / (o.mbps * 1e6), 9)
      }
      // The planner sends read-only files first and once: they are never in its final copy.
      expect(planned.final_bytes, `seed ${seed}`).toBeLessThanOrEqual(image - read_only)
      expect(fixed.precopy_bytes, `seed ${seed}`).toBeGreaterThanOrEqual(image)
    }
  })
})
