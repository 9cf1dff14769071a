import { randomBytes } from 'node:crypto'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { RACY_WINDOW_NS, StagingArea, wallClockNs } from '../../src/drivers/process/staging.ts'

let dir: string
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sustain-staging-'))
})
afterEach(async () => {
  await rm(dir, { recursive: true, force: true })
})

describe('staging on a file system with a coarse clock', () => {
  it('a file written just before a capture is copied again, unless it is append_only', async () => {
    const state = join(dir, 'state')
    await mkdir(state)
    const area = new StagingArea(join(dir, 'staging'), state, (name) => name === 'box')
    area.capabilities = { reflink: false, fine_timestamps: false } // as on Linux before 6.13
    await writeFile(join(state, 'box'), randomBytes(64 * 1024))
    await writeFile(join(state, 'x'), randomBytes(64 * 1024))
    const first = await area.begin()
    await first.pass()
    first.markRacy(wallClockNs() - RACY_WINDOW_NS) // both were written just now: both racy
    await first.finish()
    await area.commit(first)
    const second = await area.begin()
    const stats = await second.pass()
    await second.finish()
    const staged = await area.commit(second)
    // x may have been rewritten within the clock tick: copied again. box can only have grown.
    expect(stats).toMatchObject({ copied_files: 1, tail_files: 0, copied_bytes: 64 * 1024 })
    for (const name of ['box', 'x'])
      expect((await readFile(join(staged.dir, name))).equals(await readFile(join(state, name)))).toBe(true)
    await area.close()
  })
})
