import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { fileImageWriter } from '../../snapshot/atomic-file.ts'
import { imageFromFile } from '../../snapshot/image.ts'
import { neededBlobs } from '../../snapshot/manifest.ts'
import { SnapshotStore } from '../../snapshot/store.ts'
import { changePages, type Fixture, fixture, seededBytes } from './helpers.ts'

const CHUNK = 64 * 1024
const IMAGE_BYTES = 16 * CHUNK
let f: Fixture

beforeAll(async () => {
  f = await fixture({
    threads: 2,
    chunk_bytes: CHUNK,
    retain_newest: 3,
    rebase: { max_delta_ratio: 0.15, max_total_delta_ratio: 0.4 },
  })
})
afterAll(async () => {
  await f.cleanup()
})

describe('rebase over many generations', () => {
  it('the base moves forward, every snapshot restores, storage stays bounded', async () => {
    let image = seededBytes(1, IMAGE_BYTES)
    let rebases = 0
    let peak_bytes = 0
    for (let generation = 0; generation < 40; generation++) {
      // The image keeps drifting from the base, so deltas grow until a rebase.
      image = changePages(image, 1000 + generation, 12)
      const path = await f.write('gen.img', image)
      const result = await f.engine.take(imageFromFile(path), { term: 3 })
      if (result.rebased) {
        rebases++
        expect(result.rebased.derived_from).toBe(result.manifest.id)
        expect(result.rebased.base).toBeNull()
      }
      const newest = result.rebased ?? result.manifest
      expect((await f.store.newestComplete())?.id).toBe(newest.id)
      const out = join(f.dir, 'restored.img')
      await f.store.restore(newest.id, fileImageWriter(out))
      expect((await readFile(out)).equals(image)).toBe(true)
      expect(f.store.listSnapshots().length).toBeLessThanOrEqual(5)
      peak_bytes = Math.max(peak_bytes, await f.store.storedBytes())
    }
    expect(rebases).toBeGreaterThanOrEqual(4)
    // Two bases (old one still needed by retained snapshots) plus bounded deltas.
    expect(peak_bytes).toBeLessThan(3 * IMAGE_BYTES)
  })

  it('a holder derives the new base locally: nothing of it is fetched again', async () => {
    const holder = await SnapshotStore.open(join(f.dir, 'holder'), f.pool)
    const rebased = f.store.listSnapshots().find((s) => s.derived_from !== null)!
    const source = f.store.info(rebased.derived_from!)!
    // Replicate the source snapshot (and its base) as the overlay would: manifests, then missing blobs.
    for (const id of [source.base!, source.id]) {
      await holder.putManifest((await f.store.getManifestBytes(id))!)
      for (const hash of (await holder.missingBlobs(id))!)
        await holder.putBlob(hash, (await f.store.readBlob(hash))!)
      expect(await holder.isComplete(id)).toBe(true)
    }
    const derived = (await f.store.getManifest(rebased.id))!
    // Some chunks of the new base exist nowhere on the holder yet: they must be derived, not fetched.
    const absent: string[] = []
    for (const hash of neededBlobs(derived).keys()) if (!(await holder.hasBlob(hash))) absent.push(hash)
    expect(absent.length).toBeGreaterThan(0)
    await holder.putManifest((await f.store.getManifestBytes(rebased.id))!)
    expect(await holder.missingBlobs(rebased.id)).toEqual([])
    expect(await holder.isComplete(rebased.id)).toBe(true)
    const a = join(f.dir, 'a.img')
    const b = join(f.dir, 'b.img')
    await holder.restore(rebased.id, fileImageWriter(a))
    await f.store.restore(rebased.id, fileImageWriter(b))
    expect((await readFile(a)).equals(await readFile(b))).toBe(true)
  })
})
