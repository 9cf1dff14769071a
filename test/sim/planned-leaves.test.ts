import { describe, expect, it } from 'vitest'
import { runPlannedLeaves } from './planned-leaves.ts'

// leave.slow in the simulator: 20 planned leaves in a row on a quiet network, each leaver rejoining,
// half of them with the leaver busy (its messages held 0.5-3 s) while it takes its final snapshot.
describe('simulator, planned leaves', () => {
  it('seeds 1-30: every leave hands over to the one node that claims', () => {
    const problems = []
    for (let seed = 1; seed <= 30; seed++) {
      const r = runPlannedLeaves(seed)
      if (r.violation) problems.push(`seed ${seed}: ${r.violation.message}`)
      problems.push(...r.problems.map((p) => `seed ${seed}: ${p}`))
    }
    expect(problems).toEqual([])
  }, 300_000)

  it('the planted bug "suspects-leaver" (a busy leaver taken for dead) is caught', () => {
    let caught: string | null = null
    for (let seed = 1; seed <= 60 && caught === null; seed++) {
      const r = runPlannedLeaves(seed, { planted_bug: 'suspects-leaver' })
      caught = r.problems[0] ?? null
    }
    expect(caught).toMatch(/without handing over|claims/)
  }, 300_000)
})
