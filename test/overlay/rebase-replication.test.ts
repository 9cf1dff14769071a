import { randomBytes } from 'node:crypto'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import type { BlobRecipe } from '../../overlay/recipes.ts'
import { type LocalTestnet, startTestnet } from '../../overlay/testnet.ts'
import { fileImageWriter } from '../../snapshot/atomic-file.ts'
import { ChunkError } from '../../snapshot/errors.ts'
import { changePages, seededBytes } from '../snapshot/helpers.ts'
import { withTimeout } from './harness.ts'
import { type NodeSetup, RebaseNode } from './rebase-nodes.ts'

const KiB = 1024
const CHUNK_BYTES = 64 * KiB
const IMAGE_BYTES = 4 * 1024 * KiB
/** 1 % of the image's 4 KiB pages change per snapshot. */
const PAGES_PER_SNAPSHOT = Math.round(IMAGE_BYTES / 4096 / 100)
/** The base moves once the deltas against it pass 5 % of the image (every few snapshots). */
const REBASE = { max_delta_ratio: 0.5, max_total_delta_ratio: 0.05 }
const WAIT_MS = 60_000

describe('rebase without resending, across the overlay', () => {
  let testnet: LocalTestnet
  let dir: string
  let nodes: RebaseNode[] = []
  let secret: Buffer

  beforeAll(async () => {
    testnet = await startTestnet(5)
  })
  afterEach(async () => {
    await Promise.all(nodes.map((n) => n.close()))
    nodes = []
    await rm(dir, { recursive: true, force: true })
  })
  afterAll(async () => {
    await testnet?.destroy()
  })

  async function start(name: string, overrides: Partial<NodeSetup> = {}): Promise<RebaseNode> {
    const node = await RebaseNode.start({
      dir,
      name,
      bootstrap: testnet.bootstrap,
      secret,
      seed: randomBytes(32),
      keep: 2,
      chunk_bytes: CHUNK_BYTES,
      rebase: REBASE,
      ...overrides,
    })
    nodes.push(node)
    return node
  }

  async function restored(node: RebaseNode, id: string): Promise<Buffer> {
    const out = join(dir, `${node.setup.name}-restored.img`)
    await node.store.restore(node.held.get(id)!.engine_id, fileImageWriter(out))
    return readFile(out)
  }

  async function settled(node: RebaseNode, id: string): Promise<void> {
    await withTimeout(node.settled(id), WAIT_MS, `${node.setup.name} replicates ${id}`)
  }

  it('a candidate downloads deltas and recipes, never the new base; a late joiner derives it; both restore', async () => {
    dir = await mkdtemp(join(tmpdir(), 'sustain-rebase-'))
    secret = randomBytes(32)
    const server = await start('server')
    const candidate = await start('candidate')
    await candidate.count(server.key)
    let image = seededBytes(7, IMAGE_BYTES)
    const first = await server.take(image)
    await settled(candidate, first.id)
    const downloaded_first = candidate.downloaded.get(server.key) ?? 0
    expect(downloaded_first).toBeGreaterThanOrEqual(IMAGE_BYTES)

    let appended_after_first = 0
    let rebases = 0
    let newest = first.id
    for (let generation = 1; generation <= 10; generation++) {
      image = changePages(image, 100 + generation, PAGES_PER_SNAPSHOT)
      const taken = await server.take(image)
      appended_after_first += taken.appended_bytes
      if (taken.rebased) {
        rebases++
        // The derived base went out as recipes: its new chunks are not in the core as bytes.
        expect(taken.appended_bytes).toBeLessThan(IMAGE_BYTES / 8)
      }
      newest = taken.id
      await settled(candidate, newest)
    }
    expect(rebases).toBeGreaterThanOrEqual(2)
    expect(candidate.failures).toEqual([])
    // Ten snapshots of 1 % change each, two or more rebases: far below one image sent or fetched.
    expect(appended_after_first).toBeLessThan(IMAGE_BYTES / 2)
    const downloaded_after_first = candidate.downloaded.get(server.key)! - downloaded_first
    expect(downloaded_after_first).toBeLessThan(IMAGE_BYTES / 2)
    // The core keeps recipe inputs (old base chunks, deltas) only while kept snapshots need them.
    expect(server.keptBytes()).toBeLessThan(2 * IMAGE_BYTES)
    // The candidate made the new bases' chunks itself, from the old base and the delta.
    expect(candidate.collected.some((c) => c.manifest.derived_from !== null && c.stats.derived > 0)).toBe(
      true,
    )
    expect((await restored(candidate, newest)).equals(image)).toBe(true)

    // A node that joins now holds nothing: it collects the kept snapshots whole, deriving what is a recipe.
    const late = await start('late')
    await late.count(server.key)
    await settled(late, newest)
    expect(late.failures).toEqual([])
    expect(late.collected.some((c) => c.stats.derived > 0)).toBe(true)
    expect((await restored(late, newest)).equals(image)).toBe(true)

    // A derived chunk corrupted on disk after collect: restore names the chunk and refuses.
    const first_chunks = new Set(first.manifest.parts[0]!.chunks.map((c) => Buffer.from(c.h).toString('hex')))
    const newest_manifest = (await late.store.getManifest(late.held.get(newest)!.engine_id))!
    const derived_hash = newest_manifest.parts[0]!.chunks.map((c) => Buffer.from(c.h).toString('hex')).find(
      (h) => !first_chunks.has(h),
    )!
    expect(derived_hash).toBeDefined()
    const path = join(late.store.dir, 'blobs', derived_hash.slice(0, 2), derived_hash)
    const bytes = await readFile(path)
    bytes[bytes.length >> 1]! ^= 0xff
    await writeFile(path, bytes)
    await expect(restored(late, newest)).rejects.toBeInstanceOf(ChunkError)
  })

  it('r = 2: with the writer gone, a new node collects the newest snapshot from placement shares and derives its recipes', async () => {
    dir = await mkdtemp(join(tmpdir(), 'sustain-rebase-'))
    secret = randomBytes(32)
    const shares = { replication_factor: 2, collect: false }
    const server = await start('server', { replication_factor: 2 })
    const holders = await Promise.all(['h1', 'h2', 'h3'].map((name) => start(name, shares)))
    let image = seededBytes(13, IMAGE_BYTES)
    let newest = (await server.take(image)).id
    await Promise.all(holders.map((h) => settled(h, newest)))
    let rebases = 0
    for (let generation = 1; generation <= 10 && rebases < 1; generation++) {
      image = changePages(image, 500 + generation, PAGES_PER_SNAPSHOT)
      const taken = await server.take(image)
      if (taken.rebased) rebases++
      newest = taken.id
      await Promise.all(holders.map((h) => settled(h, newest)))
    }
    expect(rebases).toBe(1)
    // Every holder has only its share of the derived base's recipes and their inputs.
    for (const h of holders) expect(h.held.size).toBe(0)
    await server.close()
    nodes = nodes.filter((n) => n !== server)
    const restorer = await start('restorer', shares)
    await restorer.count(server.key)
    await withTimeout(restorer.fetch(server.key, newest), WAIT_MS, 'restorer collects the newest snapshot')
    expect(restorer.failures).toEqual([])
    expect(restorer.collected[0]!.stats.derived).toBeGreaterThan(0)
    expect((await restored(restorer, newest)).equals(image)).toBe(true)
  })

  it('a recipe that does not make its blob is refused; what was held before still restores', async () => {
    dir = await mkdtemp(join(tmpdir(), 'sustain-rebase-'))
    secret = randomBytes(32)
    const server = await start('server')
    const candidate = await start('candidate')
    let image = seededBytes(11, IMAGE_BYTES)
    let last_good = (await server.take(image)).id
    await settled(candidate, last_good)
    // A writer whose recipes each describe another chunk: each derivation yields the wrong bytes or none.
    const lying = (recipes: Map<string, BlobRecipe>) => {
      for (const [hash, recipe] of recipes) {
        if (recipe.inputs.length !== 2) continue
        const other = [...recipes.values()].find((r) => r !== recipe && r.inputs.length === 2)
        if (other) recipes.set(hash, { ...recipe, recipe: other.recipe })
      }
      return recipes
    }
    let refused: string | null = null
    for (let generation = 1; generation <= 10 && refused === null; generation++) {
      image = changePages(image, 300 + generation, PAGES_PER_SNAPSHOT)
      // Only a rebase has recipes; the lying writer only lies then.
      const taken = await server.take(image, lying)
      await settled(candidate, taken.id)
      if (taken.rebased) refused = taken.id
      else last_good = taken.id
    }
    expect(refused).not.toBeNull()
    expect(candidate.held.has(refused!)).toBe(false)
    const failure = candidate.failures.find((f) => f.id === refused)
    expect(failure?.error.message).toMatch(/hash|corrupt|base|missing/)
    // What it held before still restores.
    expect((await restored(candidate, last_good)).length).toBe(IMAGE_BYTES)
  })
})
