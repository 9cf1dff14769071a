import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ChunkKind } from '../../snapshot/codec.ts'
import { formatSnapshotId } from '../../snapshot/ids.ts'
import { imageFromFile } from '../../snapshot/image.ts'
import type { Manifest } from '../../snapshot/manifest.ts'
import { retainedSnapshots } from '../../snapshot/retention.ts'
import type { SnapshotInfo } from '../../snapshot/store.ts'
import { changePages, type Fixture, fixture, NODE, seededBytes } from './helpers.ts'

const CHUNK = 64 * 1024
let f: Fixture

beforeAll(async () => {
  // Never rebases by itself: the test makes the derived bases it needs.
  f = await fixture({
    threads: 2,
    chunk_bytes: CHUNK,
    rebase: { max_delta_ratio: 10, max_total_delta_ratio: 10 },
  })
})
afterAll(async () => {
  await f.cleanup()
})

function info(seq: number, derived_from_seq: number | null = null): SnapshotInfo {
  const id = (s: number) => formatSnapshotId({ node: NODE, term: 1, seq: s })
  return {
    id: id(seq),
    node: NODE,
    term: 1,
    seq,
    parent: null,
    base: null,
    derived_from: derived_from_seq === null ? null : id(derived_from_seq),
    time_ms: 0,
    image_bytes: 0,
    delta_bytes: 0,
  }
}

/** What a crash in the middle of a rebase leaves: the derived base's manifest, none of its own blobs. */
function derivedBase(source: Manifest): Manifest {
  const seq = source.seq + 1
  return {
    ...source,
    id: formatSnapshotId({ node: source.node, term: source.term, seq }),
    seq,
    parent: source.id,
    base: null,
    derived_from: source.id,
    parts: source.parts.map((part) => ({
      ...part,
      chunks: part.chunks.map((c) => ({ k: ChunkKind.RAW, h: c.h })),
    })),
  }
}

describe('retention', () => {
  it('counts restorable states: an interrupted rebase counts nothing, a derived base and its source once', async () => {
    // Newest first: 6, 5 (derived from 4, incomplete), 4, 3 (derived from 2), 2, 1.
    const infos = [info(6), info(5, 4), info(4), info(3, 2), info(2), info(1)]
    const incomplete = new Set([infos[1]!.id])
    const isComplete = async (id: string) => !incomplete.has(id)
    const seqs = async (retain: number) =>
      (await retainedSnapshots(infos, retain, isComplete)).map((id) => Number(id.split('.').pop()))
    expect(await seqs(1)).toEqual([6])
    expect(await seqs(2)).toEqual([6, 5, 4])
    // The state of 3 includes 2, its source; a plain count of 3 snapshots would stop at 4.
    expect(await seqs(3)).toEqual([6, 5, 4, 3, 2])
    expect(await seqs(4)).toEqual([6, 5, 4, 3, 2, 1])
  })

  it('a rebase a crash interrupted is finished by the next snapshot, which then encodes against it', async () => {
    let image = seededBytes(9, 8 * CHUNK)
    const path = await f.write('img', image)
    await f.engine.take(imageFromFile(path), { term: 1 })
    image = changePages(image, 5, 20)
    await f.write('img', image)
    const { manifest } = await f.engine.take(imageFromFile(path), { term: 1 })
    const interrupted = derivedBase(manifest)
    await f.store.writeManifest(interrupted)
    expect(await f.store.isComplete(interrupted.id)).toBe(false)

    await f.write('img', changePages(image, 6, 1))
    const next = await f.engine.take(imageFromFile(path), { term: 1 })
    expect(await f.store.isComplete(interrupted.id)).toBe(true)
    expect(next.manifest.base).toBe(interrupted.id)
    expect(next.manifest.parent).toBe(interrupted.id)
    await rm(join(f.dir, 'img'))
  })
})
