import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { directoryImageWriter } from '../../snapshot/atomic-file.ts'
import { overlapsRanges } from '../../snapshot/image.ts'
import { type Fixture, fixture, seededBytes } from './helpers.ts'

/**
 * A VM disk captured by change (issue 21): the capture names the byte ranges its dirty bitmap marked since
 * the previous capture; the engine reads only the chunks they touch and reuses the parent's entries for
 * the rest. Every snapshot restores to the file as it was.
 */

const CHUNK = 64 * 1024
let s: Fixture
afterEach(async () => {
  await s?.cleanup()
})

describe('FilePart.changed', () => {
  it('overlapsRanges finds the one range that can overlap a span', () => {
    const ranges: [number, number][] = [
      [10, 20],
      [40, 50],
    ]
    expect(overlapsRanges(ranges, 0, 10)).toBe(false)
    expect(overlapsRanges(ranges, 0, 11)).toBe(true)
    expect(overlapsRanges(ranges, 20, 40)).toBe(false)
    expect(overlapsRanges(ranges, 49, 60)).toBe(true)
    expect(overlapsRanges(ranges, 50, 60)).toBe(false)
    expect(overlapsRanges([], 0, 100)).toBe(false)
  })

  it('only chunks inside the changed ranges are read; the image restores exactly', async () => {
    s = await fixture({ chunk_bytes: CHUNK })
    const path = join(s.dir, 'disk.raw')
    const disk = seededBytes(1, 16 * CHUNK)
    await writeFile(path, disk)
    const first = await s.engine.take([{ name: 'disk.raw', path, generation: 'g1' }], { term: 1 })
    expect(first.reused_chunks).toBe(0)

    // Two writes: one inside chunk 3, one across the boundary of chunks 9 and 10.
    seededBytes(2, 4096).copy(disk, 3 * CHUNK + 8192)
    seededBytes(3, 8192).copy(disk, 10 * CHUNK - 4096)
    await writeFile(path, disk)
    const ranges: [number, number][] = [
      [3 * CHUNK + 8192, 3 * CHUNK + 12288],
      [10 * CHUNK - 4096, 10 * CHUNK + 4096],
    ]
    const second = await s.engine.take(
      [{ name: 'disk.raw', path, generation: 'g2', changed: { since: 'g1', ranges } }],
      { term: 1 },
    )
    expect(second.reused_chunks).toBe(16 - 3)
    const out = join(s.dir, 'out')
    await s.store.restore(second.manifest.id, directoryImageWriter(out))
    expect((await readFile(join(out, 'disk.raw'))).equals(disk)).toBe(true)

    // Ranges from a capture that is not the parent's: everything is read again.
    const third = await s.engine.take(
      [{ name: 'disk.raw', path, generation: 'g3', changed: { since: 'g1', ranges: [] } }],
      { term: 1 },
    )
    expect(third.reused_chunks).toBe(0)
  })
})
