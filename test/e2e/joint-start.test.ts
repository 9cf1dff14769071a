import { describe, it } from 'vitest'
import { localFederations } from './fixtures.ts'
import { jointStarts } from './joint-start.ts'

const startFederation = localFederations()

describe('joint start (5 node processes started together, as sustain demo does)', () => {
  it('the highest priority is the first server in each of 5 joint starts', async () => {
    await jointStarts(startFederation, 5, startFederation.stopAll)
  }, 600_000)
})
