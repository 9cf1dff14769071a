import { describe, it } from 'vitest'
import { expectNoViolations } from './run-seeds.ts'

// 1000 seeds in all across seeds-a and seeds-b (two files so both cores work).
describe('simulator, 7 nodes', () => {
  it('seeds 1-500 keep every invariant', () => expectNoViolations(1, 500, { nodes: 7 }), 300_000)
})

describe('simulator, 3 nodes', () => {
  it('seeds 1-100 keep every invariant', () => expectNoViolations(1, 100, { nodes: 3 }), 120_000)
})
