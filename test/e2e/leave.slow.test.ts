import { describe, it } from 'vitest'
import { localFederations } from './fixtures.ts'
import { leavesInARow } from './leave-checks.ts'

const startFederation = localFederations()

describe('leave under load, the full proof (slow)', () => {
  it('20 planned leaves in a row, each leaver rejoining: every leave exits 0, one claim each, no two servers, no acknowledged mail lost', async () => {
    await leavesInARow(startFederation, 20)
  }, 2_400_000)
})
