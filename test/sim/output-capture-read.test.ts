import { describe, expect, it } from 'vitest'
import { runScenario } from './scenario.ts'

/**
 * Output commit's mark against the capture's read of the service state (WorldOptions.capture_read). The
 * process driver's unchanged check marks first and reads the state after, without a freeze: output made
 * in between is in the snapshot but waits for the next capture. Reading before marking would release
 * output whose write the snapshot lacks; `released-output-in-snapshot` catches that.
 */
describe('output commit: the capture reads the state after it marks', () => {
  it('reading after the mark passes every invariant (k = 1 and 2)', () => {
    for (let seed = 1; seed <= 12; seed++) {
      const result = runScenario(seed, {
        nodes: 5,
        output_commit: 1 + (seed % 2),
        capture_read: 'after-mark',
      })
      expect(result.violation?.message ?? null).toBeNull()
    }
  })

  it('reading before the mark (a planted bug of the capture model) is caught', () => {
    let caught: string | null = null
    for (let seed = 1; seed <= 100 && caught === null; seed++) {
      const result = runScenario(seed, { nodes: 5, output_commit: 1, capture_read: 'before-mark' })
      if (result.violation) caught = result.violation.invariant
    }
    expect(caught).toBe('released-output-in-snapshot')
  })
})
