import { describe, expect, it } from 'vitest'
import { mergePolicyFor, refusal, typePolicy } from '../../src/core/service-type.ts'
import { expectNoViolations } from './run-seeds.ts'
import { runScenario } from './scenario.ts'

// Type3 (needs all data, tolerates delay) is served only on the side with a strict majority
// (core/service-type.ts mergePolicyFor): the simulator's refuse-to-split checks ("never two serving
// nodes", "a minority side has no server") are Type3's invariant, checked after every step.
describe('simulator, service types', () => {
  it('type3 maps to refuse-to-split whatever the configured policy; types 0-2 keep it', () => {
    expect(mergePolicyFor('type3', 'helper')).toBe('refuse-to-split')
    expect(mergePolicyFor('type3', 'keep-higher')).toBe('refuse-to-split')
    for (const t of ['type0', 'type1', 'type2'] as const) expect(mergePolicyFor(t, 'helper')).toBe('helper')
    expect(typePolicy('type2').told_of_split).toBe(true)
    expect(refusal('type1', 'x')).toBeNull()
    expect(refusal('cannot', 'x')).toMatch(/type3/)
  })

  // Type1 and Type2 run the core with the configured policy (helper by default): both sides of a split
  // serve and the heal merges; their invariant is the default simulator's (one server once healed, every
  // fork merged once, nothing acknowledged lost), and its planted heal bug is caught under their policy.
  for (const type of ['type1', 'type2'] as const) {
    it(`${type}: the planted bug "never-step-down-on-heal" (two servers after a heal) is caught`, () => {
      let caught: string | null = null
      for (let seed = 1; seed <= 200 && caught === null; seed++) {
        const result = runScenario(seed, {
          nodes: 5,
          planted_bug: 'never-step-down-on-heal',
          merge_policy: mergePolicyFor(type, 'helper'),
        })
        if (result.violation) caught = result.violation.invariant
      }
      expect(caught).not.toBeNull()
      expect(caught).not.toBe('exception')
    })
  }

  it(
    'type3, 5 nodes, seeds 1-40: never a serving node on a side lacking the majority',
    () => expectNoViolations(1, 40, { nodes: 5, merge_policy: mergePolicyFor('type3', 'helper') }),
    120_000,
  )

  it('type3: the planted bug "no-support-gap" (a minority side could serve) is caught', () => {
    let caught: string | null = null
    for (let seed = 1; seed <= 200 && caught === null; seed++) {
      const result = runScenario(seed, {
        nodes: 7,
        planted_bug: 'no-support-gap',
        merge_policy: mergePolicyFor('type3', 'helper'),
      })
      if (result.violation) caught = result.violation.invariant
    }
    expect(caught).not.toBeNull()
    expect(caught).not.toBe('exception')
  })
})
