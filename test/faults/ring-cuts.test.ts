import { describe, expect, it } from 'vitest'
import { ringCuts } from '../../bench/faults/nemeses-topology.ts'
import { Prng } from '../sim/prng.ts'

/** Who each node still sees (itself included) once `pairs` are cut among `n` nodes. */
function views(n: number, pairs: [number, number][]): Set<number>[] {
  const cut = new Set(pairs.flatMap(([a, b]) => [`${a} ${b}`, `${b} ${a}`]))
  return Array.from(
    { length: n },
    (_, i) => new Set(Array.from({ length: n }, (_, j) => j).filter((j) => !cut.has(`${i} ${j}`))),
  )
}

describe('the majority ring (fault lab nemesis partition-ring)', () => {
  for (const n of [3, 4, 5, 6, 7, 10, 20]) {
    it(`${n} nodes: every node sees a majority, and no two nodes see the same set`, () => {
      const order = new Prng(n).shuffle(Array.from({ length: n }, (_, i) => i)) // a seeded ring order
      expect(new Set(order).size).toBe(n)
      const seen = views(n, ringCuts(order))
      const majority = Math.floor(n / 2) + 1
      for (const view of seen) expect(view.size).toBeGreaterThanOrEqual(majority)
      const distinct = new Set(seen.map((v) => [...v].sort((a, b) => a - b).join(',')))
      // With 3 nodes one link is cut: the third node still sees everyone, the two ends differ.
      expect(distinct.size).toBe(n === 3 ? 3 : n)
      expect(seen.some((v) => v.size < n)).toBe(true) // something was cut
    })
  }
})
