import { describe, expect, it } from 'vitest'
import { PLANTED_BUG_ELECTION_FAULTS } from '../../src/core/planted-bugs.ts'
import { runFalseSuspicion, runLateAdmission } from './election-faults.ts'

// Issue 24: refusals naming a node the claimant cannot reach. A late admission at formation (the best
// node and the second not reaching each other for 1-8 s) and a false suspicion (one candidate cut from
// the live server, or one way only, while the others hear both): never two servers at once (but for a
// restore shorter than a refusal's round trip, which the heal merges), and the right one at the end.
// Before the rule (the core at 1896846), 155 of seeds 1-200 of the first and 200 of 200 of the second
// had two servers.
describe('simulator, election faults', () => {
  it('late admission, seeds 1-60: one server, the best node', () => {
    const problems: string[] = []
    for (let seed = 1; seed <= 60; seed++) {
      const r = runLateAdmission(seed)
      if (r.violation) problems.push(`seed ${seed}: ${r.violation.message}`)
      problems.push(...r.problems.map((p) => `seed ${seed}: ${p}`))
    }
    expect(problems).toEqual([])
  }, 300_000)

  it('false suspicion, seeds 1-40: the suspecting claimant never serves beside the server', () => {
    const problems: string[] = []
    for (let seed = 1; seed <= 40; seed++) {
      const r = runFalseSuspicion(seed)
      if (r.violation) problems.push(`seed ${seed}: ${r.violation.message}`)
      problems.push(...r.problems.map((p) => `seed ${seed}: ${p}`))
    }
    expect(problems).toEqual([])
  }, 300_000)

  // ignores-unheard-better: the formation rule off; ignores-followed-server: the majority rule off.
  it.each([...PLANTED_BUG_ELECTION_FAULTS])(
    'the planted bug "%s" is caught',
    (bug) => {
      let caught: string | null = null
      for (let seed = 1; seed <= 60 && caught === null; seed++) {
        const r =
          bug === 'ignores-unheard-better'
            ? runLateAdmission(seed, { planted_bug: bug })
            : runFalseSuspicion(seed, { planted_bug: bug })
        caught = r.problems[0] ?? r.violation?.message ?? null
      }
      expect(caught).toMatch(/serve at once/)
    },
    300_000,
  )
})
