import { describe, it } from 'vitest'
import { expectNoViolations } from './run-seeds.ts'

// merge_policy refuse-to-split adds the one-serving-node invariant at every step and majority-only
// liveness; `npm run sim -- --policy refuse-to-split` runs many more seeds.
describe('simulator, refuse-to-split', () => {
  it(
    '7 nodes, seeds 1-60: never two serving nodes; a quiet majority has one server, a minority none',
    () => expectNoViolations(1, 60, { nodes: 7, merge_policy: 'refuse-to-split' }),
    120_000,
  )

  it(
    '3 nodes, seeds 1-60',
    () => expectNoViolations(1, 60, { nodes: 3, merge_policy: 'refuse-to-split' }),
    120_000,
  )
})
