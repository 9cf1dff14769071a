import { describe, it } from 'vitest'
import { localFederations } from './fixtures.ts'
import { jointStarts } from './joint-start.ts'

const startFederation = localFederations()

describe('joint start, the full proof (slow)', () => {
  it('the highest priority is the first server in each of 20 joint starts', async () => {
    await jointStarts(startFederation, 20, startFederation.stopAll)
  }, 1_800_000)
})
