import { expect } from 'vitest'
import { runScenario, type ScenarioOptions } from './scenario.ts'

/** Runs seeds first..first+count-1 and fails with every violating seed and its replay command. */
export function expectNoViolations(first: number, count: number, options: ScenarioOptions): void {
  const failures: string[] = []
  let elections = 0
  for (let seed = first; seed < first + count; seed++) {
    const result = runScenario(seed, options)
    elections += result.elections
    if (result.violation) {
      failures.push(
        `seed ${seed}: ${result.violation.message} (replay: npm run sim -- --seed ${seed} --nodes ${options.nodes})`,
      )
    }
  }
  expect(failures).toEqual([])
  // Not vacuous: the scenarios really drove failovers.
  expect(elections).toBeGreaterThan(count)
}
