import { describe, expect, it } from 'vitest'
import {
  PLANTED_BUG_ELECTION_FAULTS,
  PLANTED_BUG_OUTPUT_COMMIT,
  PLANTED_BUG_PLANNED_LEAVES,
  PLANTED_BUG_POLICY,
  PLANTED_BUG_STRATEGY,
  PLANTED_BUGS,
} from '../../src/core/planted-bugs.ts'
import { runScenario } from './scenario.ts'

describe('the checker is not vacuous', () => {
  // Bugs only planned leaves show are caught in planned-leaves.test.ts, those only election faults
  // show in election-faults.test.ts.
  const elsewhere = (b: (typeof PLANTED_BUGS)[number]) =>
    PLANTED_BUG_PLANNED_LEAVES.has(b) || PLANTED_BUG_ELECTION_FAULTS.has(b)
  for (const bug of PLANTED_BUGS.filter((b) => !elsewhere(b))) {
    it(`catches the planted bug "${bug}"`, () => {
      let caught: string | null = null
      for (let seed = 1; seed <= 200 && caught === null; seed++) {
        const result = runScenario(seed, {
          nodes: 7,
          planted_bug: bug,
          merge_policy: PLANTED_BUG_POLICY[bug],
          strategy: PLANTED_BUG_STRATEGY[bug],
          ...(bug in PLANTED_BUG_OUTPUT_COMMIT ? { output_commit: PLANTED_BUG_OUTPUT_COMMIT[bug] } : {}),
        })
        if (result.violation) caught = result.violation.invariant
      }
      expect(caught).not.toBeNull()
      expect(caught).not.toBe('exception')
    })
  }
})

describe('determinism', () => {
  it('a seed replays exactly', () => {
    const a = runScenario(42, { nodes: 7 })
    const b = runScenario(42, { nodes: 7 })
    expect(a.log.length).toBeGreaterThan(50)
    expect(b.log).toEqual(a.log)
  })

  it('different seeds give different runs', () => {
    expect(runScenario(1, { nodes: 5 }).log).not.toEqual(runScenario(2, { nodes: 5 }).log)
  })
})
