import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { imageFromFile } from '../../snapshot/image.ts'
import { neededBlobs } from '../../snapshot/manifest.ts'
import { SnapshotStore } from '../../snapshot/store.ts'
import { changePages, type Fixture, fixture, seededBytes } from './helpers.ts'

const CHUNK = 64 * 1024
let f: Fixture

beforeAll(async () => {
  f = await fixture({ threads: 1, chunk_bytes: CHUNK })
})
afterAll(async () => {
  await f.cleanup()
})

/**
 * A candidate's collect proves the snapshot complete from the blobs it saw or wrote (output commit's
 * path to `stored`, no second stat of every blob): the store marks it complete only when that set holds
 * every blob the snapshot needs, its base's included.
 */
describe('markCompleteFrom', () => {
  it('marks a snapshot complete only when every needed blob, its base too, was seen', async () => {
    let image = seededBytes(3, 8 * CHUNK)
    const path = await f.write('img', image)
    await f.engine.take(imageFromFile(path), { term: 1 })
    image = changePages(image, 4, 3)
    await f.write('img', image)
    const { manifest } = await f.engine.take(imageFromFile(path), { term: 1 })
    const needed = [...neededBlobs(manifest).keys()]
    expect(manifest.base).not.toBeNull() // a delta: its base's blobs are needed too
    const bytes = (await f.store.getManifestBytes(manifest.id))!

    // A second store (a candidate's) that gets the manifest and all but one blob.
    const other = await SnapshotStore.open(join(f.dir, 'other'), f.pool)
    const missing = needed[0]!
    for (const hash of needed.slice(1)) await other.putBlob(hash, (await f.store.readBlob(hash))!)
    const unstored = await other.getManifest(manifest.id)
    expect(unstored).toBeUndefined()
    // Not stored here: never marked, whatever the set says.
    expect(other.markCompleteFrom(manifest, new Set(needed))).toBe(false)
    const stored = await other.putManifest(bytes)
    expect(other.markCompleteFrom(stored, new Set(needed.slice(1)))).toBe(false)
    expect(await other.isComplete(stored.id)).toBe(false)

    await other.putBlob(missing, (await f.store.readBlob(missing))!)
    expect(other.markCompleteFrom(stored, new Set(needed))).toBe(true)
    expect(await other.isComplete(stored.id)).toBe(true)
  })
})
