import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { init, WASI_ERRNO, xd3_encode_memory, xd3_smatch_cfg } from 'xdelta3-wasm'
import { fileImageWriter } from '../../snapshot/atomic-file.ts'
import { ChunkKind, encodeChunk, ready } from '../../snapshot/codec.ts'
import { imageFromFile } from '../../snapshot/image.ts'
import { type Fixture, fixture, refusedChunk } from './helpers.ts'

const target = refusedChunk(1)
const base = refusedChunk(2)

let f: Fixture
beforeAll(async () => {
  await Promise.all([init(), ready])
  f = await fixture({ threads: 1 })
})
afterAll(async () => {
  await f.cleanup()
})

describe('a chunk whose delta xdelta3-wasm cannot compute', () => {
  it('is a pair that makes xdelta3-wasm fail with ENOMEM (the precondition)', () => {
    const limit = target.byteLength - 1
    expect(xd3_encode_memory(target, base, limit, xd3_smatch_cfg.DEFAULT).ret).toBe(WASI_ERRNO.ENOMEM)
    expect(xd3_encode_memory(target, new Uint8Array(0), limit, xd3_smatch_cfg.DEFAULT).ret).toBe(
      WASI_ERRNO.ENOMEM,
    )
  })

  it('is encoded as its own bytes, with the reason, against a base chunk and against nothing', () => {
    const against = encodeChunk({ alg: 'sha256', data: target, base, try_empty_source: false })
    expect(against.kind).toBe(ChunkKind.RAW)
    expect(against.refused).toMatch(/ENOMEM/)
    expect(Buffer.from(against.blob!).equals(target)).toBe(true)
    const grown = encodeChunk({ alg: 'sha256', data: target, try_empty_source: true })
    expect(grown.kind).toBe(ChunkKind.RAW)
    expect(grown.refused).toMatch(/ENOMEM/)
  })

  it('leaves the snapshot whole: taken through the worker pool, verified, restored byte for byte', async () => {
    // Base: one chunk of `base`. Next: the refused chunk in its place plus a grown chunk (no base there).
    const first = await f.write('first.img', base)
    const taken = await f.engine.take(imageFromFile(first), { term: 1 })
    expect(taken.manifest.base).toBeNull()
    const image = Buffer.concat([target, refusedChunk(3)])
    const next = await f.write('next.img', image)
    const result = await f.engine.take(imageFromFile(next), { term: 1 })
    expect(result.codec_refusals).toBe(2)
    expect(result.manifest.base).toBe(taken.manifest.id)
    expect(result.manifest.parts[0]!.chunks.map((c) => c.k)).toEqual([ChunkKind.RAW, ChunkKind.RAW])
    const report = await f.store.verify(result.manifest.id)
    expect(report.ok).toBe(true)
    const out = join(f.dir, 'restored.img')
    await f.store.restore(result.manifest.id, fileImageWriter(out))
    expect((await readFile(out)).equals(image)).toBe(true)
  })
})
