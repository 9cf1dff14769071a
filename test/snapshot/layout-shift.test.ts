import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { fileImageWriter } from '../../snapshot/atomic-file.ts'
import { imageFromFile } from '../../snapshot/image.ts'
import { changePages, type Fixture, fixture, seededBytes } from './helpers.ts'

const CHUNK = 64 * 1024
const IMAGE_BYTES = 32 * CHUNK
/** One page record of a QEMU migration stream: 8-byte header + 4 KiB page. */
const RECORD_BYTES = 4096 + 8

/** The base, then a page record inserted near the start (everything after shifts), then small changes. */
function generations(): Buffer[] {
  const first = seededBytes(1, IMAGE_BYTES)
  const inserted = Buffer.concat([
    first.subarray(0, 3 * 4096),
    seededBytes(2, RECORD_BYTES),
    first.subarray(3 * 4096),
  ])
  const out = [first, inserted]
  for (let i = 0; i < 4; i++) out.push(changePages(out.at(-1)!, 100 + i, 4))
  return out
}

/** Takes every generation; returns each snapshot's delta bytes and whether it rebased (and why). */
async function run(f: Fixture, images: Buffer[]) {
  const out: { delta_bytes: number; rebase_reason?: string }[] = []
  for (const [i, image] of images.entries()) {
    const path = await f.write(`gen-${i}.img`, image)
    const result = await f.engine.take(imageFromFile(path), { term: 1 })
    const restored = join(f.dir, 'restored.img')
    await f.store.restore((result.rebased ?? result.manifest).id, fileImageWriter(restored))
    expect((await readFile(restored)).equals(image)).toBe(true)
    out.push({
      delta_bytes: f.store.info(result.manifest.id)!.delta_bytes,
      ...(result.rebase_reason ? { rebase_reason: result.rebase_reason } : {}),
    })
  }
  return out
}

let moving: Fixture
let stale: Fixture
beforeAll(async () => {
  // Byte ratios that never trigger here, so only the layout rule (or nothing) moves the base.
  const rebase = { max_delta_ratio: 10, max_total_delta_ratio: 100 }
  moving = await fixture({ threads: 1, chunk_bytes: CHUNK, rebase })
  stale = await fixture({ threads: 1, chunk_bytes: CHUNK, rebase: { ...rebase, max_changed_chunk_share: 1 } })
})
afterAll(async () => {
  await moving?.cleanup()
  await stale?.cleanup()
})

describe('a part whose layout moved (insertion near the start)', () => {
  it('rebases at once, so the next deltas are against the moved layout, not the stale one', async () => {
    const images = generations()
    const withRule = await run(moving, images)
    const without = await run(stale, images)
    // The insertion changes every chunk after it: the layout rule fires on that snapshot.
    expect(withRule[1]!.rebase_reason).toBe('layout of image moved')
    expect(without.every((s) => s.rebase_reason === undefined)).toBe(true)
    const later = (runs: typeof withRule) => runs.slice(2).reduce((sum, s) => sum + s.delta_bytes, 0)
    // 4 changed pages per snapshot against the moved layout, vs every chunk's shift against the stale one.
    console.log('delta bytes per snapshot, layout rule:', withRule.map((s) => s.delta_bytes).join(' '))
    console.log('delta bytes per snapshot, stale base: ', without.map((s) => s.delta_bytes).join(' '))
    expect(later(withRule)).toBeLessThan(later(without) / 3)
    // Deltas stay against the new base: generation i carries the 4 (i - 1) pages changed since it.
    for (let i = 2; i < images.length; i++)
      expect(withRule[i]!.delta_bytes).toBeLessThanOrEqual((i - 1) * 4 * (4096 + 100))
  })
})
