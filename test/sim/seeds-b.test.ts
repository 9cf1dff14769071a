import { describe, it } from 'vitest'
import { expectNoViolations } from './run-seeds.ts'

describe('simulator, 7 nodes', () => {
  it('seeds 501-1000 keep every invariant', () => expectNoViolations(501, 500, { nodes: 7 }), 300_000)
})

describe('simulator, 15 nodes', () => {
  it('seeds 1-10 keep every invariant', () => expectNoViolations(1, 10, { nodes: 15 }), 120_000)
})
