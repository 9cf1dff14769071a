import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { fileImageWriter } from '../../snapshot/atomic-file.ts'
import { ChunkKind } from '../../snapshot/codec.ts'
import { imageFromFile } from '../../snapshot/image.ts'
import { MAX_CHUNK_BYTES } from '../../snapshot/limits.ts'
import { deltaBytes, type Manifest } from '../../snapshot/manifest.ts'
import { changePages, type Fixture, fixture, seededBytes } from './helpers.ts'

const CHUNK = MAX_CHUNK_BYTES
let f: Fixture
let n = 0

beforeAll(async () => {
  f = await fixture()
})
afterAll(async () => {
  await f.cleanup()
})

/** Snapshot `bytes` (against the newest snapshot as base when asked), restore it, compare. */
async function roundTrip(bytes: Buffer, parent: string | null): Promise<Manifest> {
  const path = await f.write(`in-${n++}.img`, bytes)
  const { manifest } = await f.engine.take(imageFromFile(path), { term: 1, parent })
  const out = join(f.dir, `out-${n++}.img`)
  await f.store.restore(manifest.id, fileImageWriter(out))
  const restored = await readFile(out)
  expect(restored.length).toBe(bytes.length)
  expect(restored.equals(bytes)).toBe(true)
  return manifest
}

describe('round trips', () => {
  for (const size of [0, 1, CHUNK - 1, CHUNK, CHUNK + 1]) {
    it(`size ${size}: base, then a delta with changes`, async () => {
      const base = await roundTrip(seededBytes(size + 1, size), null)
      expect(base.base).toBeNull()
      const changed = Buffer.from(seededBytes(size + 1, size))
      if (size > 0) changed[size - 1] = (changed[size - 1]! + 1) & 0xff
      const delta = await roundTrip(changed, base.id)
      expect(delta.base).toBe(base.id)
      expect(deltaBytes(delta)).toBeLessThan(Math.max(64, size / 100))
    })
  }

  it('random image, scattered page changes: PAGES chunks, small delta', async () => {
    const image = seededBytes(7, 4 * CHUNK + 12345)
    const base = await roundTrip(image, null)
    const changed = changePages(image, 8, 20)
    const delta = await roundTrip(changed, base.id)
    const kinds = delta.parts[0]!.chunks.map((c) => c.k)
    expect(kinds).toContain(ChunkKind.PAGES)
    // 20 random pages cost about 20 pages, not whole chunks.
    expect(deltaBytes(delta)).toBeLessThan(21 * 4096 + 2048)
    expect(deltaBytes(delta)).toBeGreaterThan(19 * 4096)
  })

  it('zero-filled image: unchanged chunks cost nothing, new zero chunks almost nothing', async () => {
    const base = await roundTrip(Buffer.alloc(3 * CHUNK), null)
    const grown = await roundTrip(Buffer.alloc(5 * CHUNK + 100), base.id)
    expect(grown.parts[0]!.chunks.slice(0, 3).every((c) => c.k === ChunkKind.SAME)).toBe(true)
    expect(deltaBytes(grown)).toBeLessThan(2000)
  })

  it('append-only growth (mbox-like): only the tail is stored', async () => {
    const line = (i: number) =>
      `From user${i}@example.org Mon Nov 23 12:00:00 2026\nSubject: message ${i}\n\n${'body '.repeat(i % 50)}\n\n`
    let mbox = ''
    for (let i = 0; i < 15000; i++) mbox += line(i)
    const before = Buffer.from(mbox)
    for (let i = 15000; i < 15300; i++) mbox += line(i)
    const after = Buffer.from(mbox)
    const base = await roundTrip(before, null)
    const delta = await roundTrip(after, base.id)
    const appended = after.length - before.length
    expect(deltaBytes(delta)).toBeLessThan(appended)
  })

  it('a directory of parts round-trips, with a part added and one removed', async () => {
    const { imageFromDirectory } = await import('../../snapshot/image.ts')
    const { directoryImageWriter } = await import('../../snapshot/atomic-file.ts')
    const { mkdir, writeFile } = await import('node:fs/promises')
    const src = join(f.dir, 'state')
    await mkdir(join(src, 'sub'), { recursive: true })
    await writeFile(join(src, 'a.db'), seededBytes(1, 300_000))
    await writeFile(join(src, 'sub', 'b.log'), seededBytes(2, 5000))
    const first = await f.engine.take(await imageFromDirectory(src), { term: 2, parent: null })
    await writeFile(join(src, 'c.new'), seededBytes(3, 10))
    const { rm } = await import('node:fs/promises')
    await rm(join(src, 'sub', 'b.log'))
    const second = await f.engine.take(await imageFromDirectory(src), { term: 2, parent: first.manifest.id })
    const out = join(f.dir, 'restored-state')
    await f.store.restore(second.manifest.id, directoryImageWriter(out))
    expect((await readFile(join(out, 'a.db'))).equals(seededBytes(1, 300_000))).toBe(true)
    expect((await readFile(join(out, 'c.new'))).equals(seededBytes(3, 10))).toBe(true)
    await expect(readFile(join(out, 'sub', 'b.log'))).rejects.toThrow(/ENOENT/)
    expect(second.manifest.id).toMatch(/\.2\.2$/)
  })
})
