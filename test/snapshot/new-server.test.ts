import { readFile, unlink } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { fileImageWriter } from '../../snapshot/atomic-file.ts'
import { SnapshotEngine } from '../../snapshot/engine.ts'
import { toHex } from '../../snapshot/hash.ts'
import { imageFromFile } from '../../snapshot/image.ts'
import { MAX_CHUNK_BYTES } from '../../snapshot/limits.ts'
import { SnapshotStore } from '../../snapshot/store.ts'
import { type Fixture, fixture, refusedChunk, seededBytes } from './helpers.ts'

const OTHER = 'cd'.repeat(32)

let f: Fixture
beforeAll(async () => {
  f = await fixture({ threads: 1 })
})
afterAll(async () => {
  await f.cleanup()
})

/** Copy a snapshot and the blobs it needs into `to`, as replication does. */
async function replicate(to: SnapshotStore, id: string): Promise<void> {
  await to.putManifest((await f.store.getManifestBytes(id))!)
  for (const hash of (await to.missingBlobs(id))!) await to.putBlob(hash, (await f.store.readBlob(hash))!)
}

async function restoresTo(store: SnapshotStore, id: string, image: Buffer): Promise<void> {
  expect((await store.verify(id)).ok).toBe(true)
  const out = join(f.dir, `restored-${id.slice(-6).replace(/:/g, '-')}.img`)
  await store.restore(id, fileImageWriter(out))
  expect((await readFile(out)).equals(image)).toBe(true)
}

describe("a new server's first snapshot", () => {
  it('succeeds against the old server base, whatever the new image looks like', async () => {
    // The old server: a base during boot (2 chunks), then one delta snapshot.
    const boot = seededBytes(1, 2 * MAX_CHUNK_BYTES)
    const first = await f.engine.take(imageFromFile(await f.write('boot.img', boot)), { term: 1 })
    const settled = Buffer.concat([boot, seededBytes(2, 1000)])
    const second = await f.engine.take(imageFromFile(await f.write('settled.img', settled)), { term: 1 })
    const heir = await SnapshotStore.open(join(f.dir, 'heir'), f.pool)
    for (const id of [first.manifest.id, second.manifest.id]) await replicate(heir, id)
    const engine = new SnapshotEngine({ store: heir, node: OTHER })
    // The restored guest moved on: grown, shifted, with chunks the codec refuses.
    const moved = Buffer.concat([seededBytes(3, 4104), refusedChunk(4), settled, refusedChunk(5)])
    const result = await engine.take(imageFromFile(await f.write('moved.img', moved)), {
      term: 2,
      parent: second.manifest.id,
    })
    expect(result.manifest.base).toBe(first.manifest.id)
    expect(result.codec_refusals).toBeGreaterThanOrEqual(2)
    await restoresTo(heir, result.manifest.id, moved)
  })

  it('with a base blob missing, encodes a fresh base; fresh_base does so on request, keeping the parent', async () => {
    const heir = await SnapshotStore.open(join(f.dir, 'heir'), f.pool)
    const parent = heir.listSnapshots().find((s) => s.node === OTHER && s.base !== null)!
    const base = (await heir.getManifest(parent.base!))!
    await unlink(
      join(
        heir.dir,
        'blobs',
        toHex(base.parts[0]!.chunks[0]!.h).slice(0, 2),
        toHex(base.parts[0]!.chunks[0]!.h),
      ),
    )
    const engine = new SnapshotEngine({ store: heir, node: OTHER })
    const image = seededBytes(6, 3 * MAX_CHUNK_BYTES)
    const incomplete = await engine.take(imageFromFile(await f.write('a.img', image)), {
      term: 2,
      parent: parent.id,
    })
    expect(incomplete.manifest.base).toBeNull()
    await restoresTo(heir, incomplete.manifest.id, image)
    const asked = await engine.take(imageFromFile(await f.write('b.img', image)), {
      term: 2,
      parent: incomplete.manifest.id,
      fresh_base: true,
    })
    expect(asked.manifest).toMatchObject({ base: null, parent: incomplete.manifest.id })
    await restoresTo(heir, asked.manifest.id, image)
  })
})
