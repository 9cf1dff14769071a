import { open, readFile, rm, truncate, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { fileImageWriter } from '../../snapshot/atomic-file.ts'
import { ChunkKind, decodeChunk, encodeChunk, ready } from '../../snapshot/codec.ts'
import { applyDelta, diffImages, openDeltaFile, verifyDeltaFile } from '../../snapshot/delta-file.ts'
import { ChunkError } from '../../snapshot/errors.ts'
import { toHex } from '../../snapshot/hash.ts'
import { imageFromFile } from '../../snapshot/image.ts'
import type { Manifest } from '../../snapshot/manifest.ts'
import { SnapshotStore } from '../../snapshot/store.ts'
import { changePages, type Fixture, fixture, seededBytes } from './helpers.ts'

const CHUNK = 64 * 1024
let f: Fixture
let a: Manifest
let b: Manifest
const imageA = seededBytes(11, 4 * CHUNK + 100)
const imageB = changePages(imageA, 12, 3)

function blobPath(hash: Uint8Array): string {
  const hex = toHex(hash)
  return join(f.dir, 'store', 'blobs', hex.slice(0, 2), hex)
}

/** The first chunk of B stored as a delta (its blob belongs to B alone). */
function deltaEntry(m: Manifest) {
  const index = m.parts[0]!.chunks.findIndex((c) => c.k === ChunkKind.PAGES || c.k === ChunkKind.DELTA)
  return { index, entry: m.parts[0]!.chunks[index]! }
}

async function restoreError(id: string): Promise<ChunkError> {
  const error = await f.store.restore(id, fileImageWriter(join(f.dir, 'out.img'))).catch((e: unknown) => e)
  expect(error).toBeInstanceOf(ChunkError)
  return error as ChunkError
}

beforeEach(async () => {
  f = await fixture({ threads: 1, chunk_bytes: CHUNK })
  a = (await f.engine.take(imageFromFile(await f.write('a.img', imageA)), { term: 1, parent: null })).manifest
  b = (await f.engine.take(imageFromFile(await f.write('b.img', imageB)), { term: 1, parent: a.id })).manifest
})
afterEach(async () => {
  await f.cleanup()
})

describe('store damage is detected and named', () => {
  it('a corrupted delta blob: verify and restore name snapshot, part and chunk; restore falls back', async () => {
    const { index, entry } = deltaEntry(b)
    const path = blobPath(entry.b!)
    const bytes = await readFile(path)
    bytes[bytes.length - 1]! ^= 0xff
    await writeFile(path, bytes)
    const report = await f.store.verify(b.id)
    expect(report.ok).toBe(false)
    expect(report.problems).toEqual([expect.objectContaining({ part: 'image', index, problem: 'corrupt' })])
    const error = await restoreError(b.id)
    expect(error.location).toEqual({ snapshot_id: b.id, part: 'image', index })
    expect(error.message).toContain(b.id)
    const skipped: string[] = []
    const restored = await f.engine.restoreNewest(
      () => fileImageWriter(join(f.dir, 'fallback.img')),
      (id) => skipped.push(id),
    )
    expect(skipped).toEqual([b.id])
    expect(restored.id).toBe(a.id)
    expect((await readFile(join(f.dir, 'fallback.img'))).equals(imageA)).toBe(true)
  })

  it('a damaged base blob stops the next snapshot, naming the base chunk', async () => {
    const { index } = deltaEntry(b)
    const path = blobPath(a.parts[0]!.chunks[index]!.h)
    const original = await readFile(path)
    const damaged = Buffer.from(original)
    damaged[0]! ^= 0xff
    await writeFile(path, damaged)
    const next = imageFromFile(await f.write('c.img', imageB))
    const takeError = () => f.engine.take(next, { term: 1, parent: b.id }).catch((e: unknown) => e)
    const corrupt = await takeError()
    expect(corrupt).toBeInstanceOf(ChunkError)
    expect(corrupt).toMatchObject({ problem: 'corrupt', location: { snapshot_id: a.id, index } })
  })

  it('a truncated blob is reported as truncated', async () => {
    const { index, entry } = deltaEntry(b)
    await truncate(blobPath(entry.b!), entry.n! - 1)
    expect((await f.store.verify(b.id)).problems).toEqual([
      expect.objectContaining({ index, problem: 'truncated' }),
    ])
    expect((await restoreError(b.id)).problem).toBe('truncated')
    await truncate(blobPath(a.parts[0]!.chunks[4]!.h), 10)
    const last = await f.store.verify(a.id)
    expect(last.problems).toEqual([expect.objectContaining({ index: 4, problem: 'truncated' })])
  })

  it('reordered (swapped) chunk blobs are both reported corrupt', async () => {
    const [first, second] = [blobPath(a.parts[0]!.chunks[0]!.h), blobPath(a.parts[0]!.chunks[1]!.h)]
    const [x, y] = [await readFile(first), await readFile(second)]
    await writeFile(first, y)
    await writeFile(second, x)
    const report = await f.store.verify(a.id)
    expect(report.problems.map((p) => [p.index, p.problem])).toEqual([
      [0, 'corrupt'],
      [1, 'corrupt'],
    ])
    expect((await restoreError(a.id)).location.index).toBe(0)
  })

  it('a missing blob makes the snapshot incomplete; newest complete is the older one', async () => {
    const { entry } = deltaEntry(b)
    await rm(blobPath(entry.b!))
    expect(await f.store.isComplete(b.id)).toBe(false)
    expect(await f.store.missingBlobs(b.id)).toEqual([toHex(entry.b!)])
    expect((await f.store.newestComplete())?.id).toBe(a.id)
    expect((await f.store.verify(b.id)).complete).toBe(false)
    const restored = await f.engine.restoreNewest(() => fileImageWriter(join(f.dir, 'fallback.img')))
    expect(restored.id).toBe(a.id)
  })

  it('a damaged manifest is skipped when the store opens, with the reason', async () => {
    const path = join(f.dir, 'store', 'manifests', `${b.id}.manifest`)
    const bytes = await readFile(path)
    bytes[bytes.length - 3]! ^= 1
    await writeFile(path, bytes)
    const reopened = await SnapshotStore.open(join(f.dir, 'store'), f.pool)
    expect(reopened.listSnapshots().map((s) => s.id)).toEqual([a.id])
    expect(reopened.skipped[0]!.reason).toMatch(/checksum/)
  })

  it('a blob offered by a peer must match its hash', async () => {
    const hash = toHex(a.parts[0]!.chunks[0]!.h)
    await expect(f.store.putBlob(hash, Buffer.from('not it'))).rejects.toThrow(/do not hash/)
  })
})

describe('wrong base is refused', () => {
  it('codec: a delta applied to another base chunk', async () => {
    await ready
    const base = seededBytes(1, CHUNK)
    const data = changePages(base, 2, 1)
    const out = encodeChunk({ alg: 'sha256', data, base: Buffer.from(base), try_empty_source: false })
    expect(out.kind).toBe(ChunkKind.PAGES)
    const decode = (with_base: Uint8Array) =>
      decodeChunk({
        alg: 'sha256',
        kind: out.kind,
        hash: out.hash,
        size_bytes: CHUNK,
        blob: out.blob!,
        base: with_base,
        base_hash: out.base_hash!,
      })
    expect(Buffer.from(decode(Buffer.from(base))).equals(data)).toBe(true)
    expect(() => decode(seededBytes(3, CHUNK))).toThrow(/made against base chunk/)
  })

  it('codec: a bad page delta on the right base is corrupt, not a wrong base, and leaves the base intact', async () => {
    await ready
    const base = seededBytes(1, CHUNK)
    // Whole pages of random bytes: the payload is stored raw, so a flipped byte still decodes.
    const data = changePages(base, 4, 2)
    const out = encodeChunk({ alg: 'sha256', data, base: Buffer.from(base), try_empty_source: false })
    expect(out.kind).toBe(ChunkKind.PAGES)
    const blob = Buffer.from(out.blob!)
    blob[blob.length - 1]! ^= 0xff
    const given = Buffer.from(base)
    const decode = () =>
      decodeChunk({
        alg: 'sha256',
        kind: out.kind,
        hash: out.hash,
        size_bytes: CHUNK,
        blob,
        base: given,
        base_hash: out.base_hash!,
      })
    expect(decode).toThrow(/content hash differs/)
    expect(given.equals(base)).toBe(true)
  })

  it('delta file: apply against another base fails, naming the chunk; reordered records are caught', async () => {
    const base = await f.write('base.img', seededBytes(5, 3 * CHUNK))
    const next = Buffer.concat([seededBytes(5, CHUNK), seededBytes(6, CHUNK), seededBytes(7, CHUNK)])
    const nextPath = await f.write('next.img', next)
    const delta = join(f.dir, 'd.delta')
    await diffImages(base, nextPath, delta, { pool: f.pool, chunk_bytes: CHUNK })
    await applyDelta(base, delta, join(f.dir, 'ok.img'), { pool: f.pool })
    expect((await readFile(join(f.dir, 'ok.img'))).equals(next)).toBe(true)

    const wrong = await f.write('wrong.img', seededBytes(99, 3 * CHUNK))
    const error = await applyDelta(wrong, delta, join(f.dir, 'bad.img'), { pool: f.pool }).catch(
      (e: unknown) => e,
    )
    expect(error).toBeInstanceOf(ChunkError)
    expect((error as ChunkError).problem).toBe('wrong-base')
    await expect(readFile(join(f.dir, 'bad.img'))).rejects.toThrow(/ENOENT/)

    // Swap the two RAW records (chunks 1 and 2, same size) inside the delta file.
    const file = await openDeltaFile(delta)
    const [r1, r2] = [1, 2].map((i) => file.blobs.get(toHex(file.manifest.parts[0]!.chunks[i]!.h))!)
    await file.close()
    const handle = await open(delta, 'r+')
    const [x, y] = [Buffer.alloc(r1!.length), Buffer.alloc(r2!.length)]
    await handle.read(x, 0, x.length, r1!.offset)
    await handle.read(y, 0, y.length, r2!.offset)
    await handle.write(y, 0, y.length, r1!.offset)
    await handle.write(x, 0, x.length, r2!.offset)
    await handle.close()
    const { problems } = await verifyDeltaFile(delta, f.pool)
    expect(problems.map((p) => p.index)).toEqual([1, 2])
    const reordered = await applyDelta(base, delta, join(f.dir, 'bad.img'), { pool: f.pool }).catch(
      (e: unknown) => e,
    )
    expect((reordered as ChunkError).location.index).toBe(1)

    await truncate(delta, 100)
    await expect(openDeltaFile(delta)).rejects.toThrow(/truncated/)
  })
})
