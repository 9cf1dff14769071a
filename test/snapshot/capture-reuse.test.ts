import { randomBytes } from 'node:crypto'
import { appendFile, mkdir, readdir, readFile, writeFile } from 'node:fs/promises'
import { join, relative } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { directoryImageWriter } from '../../snapshot/atomic-file.ts'
import type { RebasePolicy } from '../../snapshot/engine.ts'
import type { ProcessDriver } from '../../src/drivers/process/driver.ts'
import { type Fixture as DriverFixture, fixture as driverFixture } from '../drivers/fixtures.ts'
import { type Fixture as SnapshotFixture, fixture as snapshotFixture } from './helpers.ts'

/**
 * A capture tells the engine which bytes did not change since the previous capture (links to the
 * previous copy, the old bytes of a grown append_only file); the engine then takes those chunks' entries
 * from the parent without reading them. Every snapshot is restored and compared with the state directory
 * as it was at the freeze; the reuse counts are checked against what the test changed.
 */

const CHUNK = 64 * 1024
let d: DriverFixture
let s: SnapshotFixture

async function setUp(rebase?: Partial<RebasePolicy>): Promise<ProcessDriver> {
  d = await driverFixture()
  s = await snapshotFixture({ chunk_bytes: CHUNK, ...(rebase ? { rebase } : {}) })
  const driver = await d.driver({ helper: undefined, append_only: ['mail/*'] })
  await driver.start()
  await mkdir(join(d.state_dir, 'mail'), { recursive: true })
  return driver
}
afterEach(async () => {
  await d?.cleanup()
  await s?.cleanup()
})

async function files(root: string): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>()
  for (const entry of await readdir(root, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue
    const path = join(entry.parentPath, entry.name)
    out.set(relative(root, path), await readFile(path))
  }
  return out
}

let restores = 0
/** Captures and takes a snapshot, restores it elsewhere and compares it with the state at the freeze. */
async function snapshot(driver: ProcessDriver, options: { parent?: string | null } = {}) {
  const capture = await driver.capture()
  const at_freeze = await files(d.state_dir) // the service only sleeps: the state is as frozen
  try {
    const taken = await s.engine.take(capture.parts, { term: 1, ...options })
    const id = (taken.rebased ?? taken.manifest).id
    const out = join(s.dir, `restore-${restores++}`)
    await s.store.restore(id, directoryImageWriter(out))
    const restored = await files(out)
    expect([...restored.keys()].sort()).toEqual([...at_freeze.keys()].sort())
    for (const [name, bytes] of at_freeze)
      expect(restored.get(name)?.equals(bytes), `${name} restored differs`).toBe(true)
    return { ...taken, id }
  } finally {
    await capture.release()
  }
}

const chunks = (bytes: number) => Math.ceil(bytes / CHUNK)

describe('encoding a capture reuses the parent for what did not change', () => {
  it('unchanged files and the old bytes of a grown mailbox are not read again', async () => {
    const driver = await setUp()
    const box = join(d.state_dir, 'mail', 'alice')
    await writeFile(box, randomBytes(10 * CHUNK + 1000)) // a partial last chunk
    for (let i = 0; i < 5; i++) await writeFile(join(d.state_dir, `f${i}`), randomBytes(CHUNK * 2))
    const first = await snapshot(driver)
    expect(first.reused_chunks).toBe(0)

    await appendFile(box, randomBytes(3000)) // one mail
    await writeFile(join(d.state_dir, 'f0'), randomBytes(CHUNK * 2)) // rewritten: copied whole
    const second = await snapshot(driver)
    // f1..f4 whole (2 chunks each), the mailbox's 10 full chunks; not its grown last chunk, not f0.
    expect(second.reused_chunks).toBe(4 * 2 + 10)

    const third = await snapshot(driver) // nothing changed
    expect(third.reused_chunks).toBe(5 * 2 + chunks(10 * CHUNK + 4000))
  })

  it('against a parent that is a base (after a rebase) the reused chunks are SAME', async () => {
    // Rebase after every delta: each snapshot's parent is then a base.
    const driver = await setUp({ max_delta_ratio: 0, max_total_delta_ratio: 0 })
    const box = join(d.state_dir, 'mail', 'alice')
    await writeFile(box, randomBytes(4 * CHUNK))
    await snapshot(driver)
    await appendFile(box, randomBytes(100))
    const second = await snapshot(driver)
    expect(second.reused_chunks).toBe(4)
    expect(second.rebased).toBeDefined()
    await appendFile(box, randomBytes(CHUNK))
    const third = await snapshot(driver)
    expect(third.reused_chunks).toBe(4) // the 4 full chunks; the one that held the 100 bytes grew
    const parts = third.manifest.parts.find((p) => p.name === 'mail/alice')!
    expect(parts.chunks.slice(0, 4).every((c) => c.k === 0)).toBe(true) // ChunkKind.SAME
  })

  it('nothing is reused when the parent is not the previous capture, or there is no base', async () => {
    const driver = await setUp()
    await writeFile(join(d.state_dir, 'a'), randomBytes(3 * CHUNK))
    const first = await snapshot(driver)
    // A capture that never became a snapshot (its take was skipped): the next one's "unchanged since"
    // names it, not the parent.
    await (await driver.capture()).release()
    expect((await snapshot(driver, { parent: first.id })).reused_chunks).toBe(0)
    // A fresh base (no parent): every chunk is read.
    expect((await snapshot(driver, { parent: null })).reused_chunks).toBe(0)
    // A parent from before the previous capture: read again.
    const fourth = await snapshot(driver)
    expect(fourth.reused_chunks).toBe(3)
    expect((await snapshot(driver, { parent: first.id })).reused_chunks).toBe(0)
  })
})
