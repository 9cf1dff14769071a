import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeAll, describe, expect, it } from 'vitest'
import { createLogger } from '../../lib/log.ts'
import { installHypercorePatches } from '../../overlay/hypercore-patches/index.ts'
import { identityFromSeed } from '../../overlay/keys.ts'
import { SnapshotFeeds, sha256Hex } from '../../overlay/snapshot-feeds.ts'

/** Snapshots the writer published before the reader came (a rejoining node's missed history). */
const HISTORY = 120
/** The writer keeps its newest KEEP and forgets the rest after each publish, as the runtime's gc does. */
const KEEP = 4

/**
 * Issue 24: a node that rejoins reads the writer's whole index history, most of it forgotten (blocks
 * cleared) by everyone while it was away. It must still hold the writer's new snapshots.
 */
describe('a reader that finds a long forgotten history (real hypercores, in-memory replication)', () => {
  const dirs: string[] = []
  const stores: SnapshotFeeds[] = []
  const streams: { destroy(): void }[] = []
  const blockKey = randomBytes(32)

  async function open(name: string): Promise<SnapshotFeeds> {
    const dir = await mkdtemp(join(tmpdir(), `sustain-history-${name}-`))
    dirs.push(dir)
    const store: SnapshotFeeds = new SnapshotFeeds({
      storageDir: dir,
      keyPair: identityFromSeed(randomBytes(32)),
      blockKey,
      log: createLogger({ name, level: 'silent' }),
      replication_factor: 0,
      members: () => [store.selfKey],
      block_timeout_ms: 1000,
      collect_concurrency: 4,
      collect_attempts: 2,
    })
    stores.push(store)
    await store.ready()
    return store
  }

  beforeAll(() => installHypercorePatches())
  afterEach(async () => {
    for (const s of streams.splice(0)) s.destroy()
    await Promise.all(stores.splice(0).map((s) => s.close()))
    await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })))
  })

  it(`holds the writer's kept and new snapshots although ${HISTORY - KEEP} older ones can no longer be downloaded`, async () => {
    const writer = await open('writer')
    const blobs = new Map<string, Buffer>()
    const publish = async (id: string) => {
      const bytes = randomBytes(256)
      const hash = sha256Hex(bytes)
      blobs.set(hash, bytes)
      await writer.publish({ id, manifest: Buffer.from(id), blobs: [hash] }, async (h) => blobs.get(h)!)
    }
    // The writer (and everyone else) forgot all but the newest KEEP: their manifests and blobs are
    // cleared, the index stays. Each forget comes after a publish, as the runtime's gc does.
    for (let i = 0; i < HISTORY; i++) {
      await publish(`old-${i}`)
      if (i >= KEEP) await writer.forget([`old-${i - KEEP}`])
    }
    const kept = Array.from({ length: KEEP }, (_, i) => `old-${HISTORY - KEEP + i}`)

    const reader = await open('reader')
    const held: string[] = []
    reader.on('snapshot-held', (info: { id: string }) => held.push(info.id))
    const a = writer.corestore.replicate(true) as unknown as NodeJS.ReadWriteStream & { destroy(): void }
    const b = reader.corestore.replicate(false) as unknown as NodeJS.ReadWriteStream & { destroy(): void }
    a.pipe(b).pipe(a)
    streams.push(a, b)
    reader.follow(writer.selfKey)
    const known = async (id: string) => {
      while (!reader.snapshots(writer.selfKey).some((e) => e.id === id)) await once(reader, 'snapshot')
    }
    await known(`old-${HISTORY - 1}`)

    // The server publishes on (as after a rejoin): each new snapshot is held.
    for (const id of ['new-1', 'new-2']) {
      const isHeld = new Promise<void>((resolve) => {
        const check = (info: { id: string }) => {
          if (info.id !== id) return
          reader.off('snapshot-held', check)
          resolve()
        }
        reader.on('snapshot-held', check)
      })
      await publish(id)
      await isHeld
    }
    // Every snapshot the writer still keeps is held, intermediate ones too (a dead-fork merge waits for
    // one of several a scan found together); of the forgotten history, nothing.
    while (!kept.every((id) => held.includes(id))) await once(reader, 'snapshot-held')
    expect(held.filter((id) => id.startsWith('old-')).sort()).toEqual([...kept].sort())
    const fetched = new Map<string, Uint8Array>()
    await reader.collect(writer.selfKey, 'new-2', async (hash, bytes) => {
      fetched.set(hash, bytes)
    })
    expect([...fetched.keys()].every((h) => blobs.has(h))).toBe(true)
  }, 120_000)
})
