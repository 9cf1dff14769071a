import { randomBytes } from 'node:crypto'
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { FileCopier, probeCapabilities } from '../../src/drivers/process/file-copy.ts'

let dir: string
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sustain-copy-'))
})
afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

describe('FileCopier', () => {
  it('copies a file of several lanes exactly, and never writes into an existing file', async () => {
    const bytes = randomBytes(3 * 1024 * 1024 + 12_345)
    await writeFile(join(dir, 'src'), bytes)
    const copier = new FileCopier(false)
    await copier.copy(join(dir, 'src'), join(dir, 'dst'), bytes.length)
    expect((await readFile(join(dir, 'dst'))).equals(bytes)).toBe(true)
    await expect(copier.copy(join(dir, 'src'), join(dir, 'dst'), bytes.length)).rejects.toThrow(/EEXIST/)
    // Only what the deciding stat saw: a file that grew since is copied up to that size.
    await copier.copy(join(dir, 'src'), join(dir, 'head'), 1000)
    expect((await readFile(join(dir, 'head'))).equals(bytes.subarray(0, 1000))).toBe(true)
    // A file that shrank since is copied to its end.
    await copier.copy(join(dir, 'src'), join(dir, 'all'), bytes.length + 5 * 1024 * 1024)
    expect((await readFile(join(dir, 'all'))).equals(bytes)).toBe(true)
  })

  it('a missing source is ENOENT (the capture treats it as removed)', async () => {
    await expect(new FileCopier(false).copy(join(dir, 'nope'), join(dir, 'x'), 10)).rejects.toThrow(/ENOENT/)
  })

  it('probes the file system and leaves nothing behind', async () => {
    const probe_dir = await mkdtemp(join(dir, 'probe-'))
    const caps = await probeCapabilities(probe_dir)
    expect(typeof caps.reflink).toBe('boolean')
    expect(typeof caps.fine_timestamps).toBe('boolean')
    expect(await readdir(probe_dir)).toEqual([])
  })
})
