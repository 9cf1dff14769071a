import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { createLogger } from '../../lib/log.ts'
import { installHypercorePatches } from '../../overlay/hypercore-patches/index.ts'
import { identityFromSeed } from '../../overlay/keys.ts'
import { type BlobRecipe, CHAIN_BYTES_RATIO, type Derive, MAX_RECIPE_DEPTH } from '../../overlay/recipes.ts'
import { type CollectProgress, SnapshotFeeds, sha256Hex } from '../../overlay/snapshot-feeds.ts'

/** Recipe used here: the blob is its inputs concatenated, then one marker byte. */
const MARK = Buffer.from([0x5a])

describe('recipe blocks in the replicated store (one node, no network)', () => {
  let dir: string
  let store: SnapshotFeeds
  /** What the "local snapshot store" holds: the publisher reads from it, derive reads inputs from it. */
  let local: Map<string, Uint8Array>

  const put = (bytes: Uint8Array): string => {
    const hash = sha256Hex(bytes)
    local.set(hash, bytes)
    return hash
  }
  const made = (inputs: string[]): Buffer => Buffer.concat([...inputs.map((i) => local.get(i)!), MARK])
  const recipe = (inputs: string[], size_bytes = made(inputs).byteLength): BlobRecipe => ({
    inputs,
    recipe: MARK,
    size_bytes,
    input_bytes: inputs.map((i) => local.get(i)!.byteLength),
  })
  const readBlob = async (hash: string) => {
    const bytes = local.get(hash)
    if (!bytes) throw new Error(`no blob ${hash}`)
    return bytes
  }
  const derive =
    (into: Map<string, Uint8Array>): Derive =>
    async (hash) => {
      const entry = store
        .snapshots(store.selfKey)
        .flatMap((e) => e.blobs)
        .find((b) => b[0] === hash)!
      return Buffer.concat([...(entry[3] as string[]).map((i) => into.get(i)!), MARK])
    }
  /** Last progress report of the latest collect. */
  let last_progress: CollectProgress | null = null
  const collectInto = (id: string, into: Map<string, Uint8Array>, extra: { derive?: Derive } = {}) =>
    store.collect(
      store.selfKey,
      id,
      async (hash, bytes) => {
        into.set(hash, bytes)
      },
      (progress) => {
        last_progress = progress
      },
      { have: async (hash) => into.has(hash), derive: extra.derive ?? derive(into) },
    )

  beforeAll(() => installHypercorePatches())
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sustain-recipes-'))
    local = new Map()
    store = new SnapshotFeeds({
      storageDir: dir,
      keyPair: identityFromSeed(randomBytes(32)),
      blockKey: randomBytes(32),
      log: createLogger({ name: 'recipes', level: 'silent' }),
      replication_factor: 0,
      members: () => [store.selfKey],
      block_timeout_ms: 1000,
      collect_concurrency: 4,
      collect_attempts: 2,
    })
    await store.ready()
  })
  afterEach(async () => {
    await store.close()
    await rm(dir, { recursive: true, force: true })
  })

  it('a recipe goes out instead of its bytes, keeps its inputs alive, and is derived and hash-checked on collect', async () => {
    const x = put(randomBytes(64 * 1024))
    const y = put(randomBytes(64 * 1024))
    await store.publish({ id: 'a', manifest: Buffer.from('a'), blobs: [x, y] }, readBlob)
    const z = put(made([x, y]))
    const core = (await store.view(store.selfKey)).core
    const before = core.byteLength
    const b = await store.publish(
      { id: 'b', manifest: Buffer.from('b'), blobs: [z], recipes: new Map([[z, recipe([x, y])]]) },
      readBlob,
    )
    expect(core.byteLength - before).toBeLessThan(1024) // recipe, manifest, index: no 128 KiB of bytes
    expect(b.roots).toBe(1)
    expect(b.blobs.map((ref) => ref[0])).toEqual([z, x, y])
    expect(b.blobs[0]![3]).toEqual([x, y])

    // Forgetting the snapshot that brought the inputs keeps them: the kept recipe needs them.
    await store.forget(['a'])
    for (const [, block] of b.blobs) expect(await core.has(block)).toBe(true)

    const fresh = new Map<string, Uint8Array>()
    const got = await collectInto('b', fresh)
    expect(got.stats).toMatchObject({ derived: 1, fetched: 2, held: 0 })
    expect(Buffer.compare(fresh.get(z)!, local.get(z)!)).toBe(0)

    // A holder of the derived blob fetches and derives nothing.
    const holder = new Map([[z, local.get(z)!]])
    expect((await collectInto('b', holder)).stats).toMatchObject({ held: 1, fetched: 0, derived: 0 })
    // Progress still ends complete (the UI marks a transfer done there).
    expect(last_progress).toEqual({ bytes_done: b.bytes_total, bytes_total: b.bytes_total })

    // A derivation that yields other bytes is refused, never handed to the sink.
    const wrong = new Map<string, Uint8Array>()
    await expect(collectInto('b', wrong, { derive: async () => Buffer.from('not it') })).rejects.toThrow(
      /does not match its hash/,
    )
    expect(wrong.has(z)).toBe(false)
  })

  it(`a chain deeper than ${MAX_RECIPE_DEPTH} recipes goes out as bytes`, async () => {
    let previous = put(randomBytes(4096))
    await store.publish({ id: 's0', manifest: Buffer.from('m'), blobs: [previous] }, readBlob)
    const depths: number[] = []
    const chain: string[] = []
    for (let step = 1; step <= MAX_RECIPE_DEPTH + 2; step++) {
      const next = put(made([previous]))
      const entry = await store.publish(
        {
          id: `s${step}`,
          manifest: Buffer.from('m'),
          blobs: [next],
          recipes: new Map([[next, recipe([previous])]]),
        },
        readBlob,
      )
      depths.push(entry.blobs[0]!.length === 4 ? entry.blobs.length - 1 : 0)
      previous = next
      chain.push(next)
    }
    // Recipe chains of 1..MAX (each listing its whole chain as inputs), then bytes, then a new chain.
    // (The chain keeps only the first 4 KiB blob alive: always within the bytes ratio.)
    expect(depths).toEqual([...Array.from({ length: MAX_RECIPE_DEPTH }, (_, i) => i + 1), 0, 1])
    const fresh = new Map<string, Uint8Array>()
    const got = await collectInto(`s${MAX_RECIPE_DEPTH}`, fresh)
    expect(got.stats).toMatchObject({ derived: MAX_RECIPE_DEPTH, fetched: 1 })
    const deepest = chain[MAX_RECIPE_DEPTH - 1]!
    expect(Buffer.compare(fresh.get(deepest)!, local.get(deepest)!)).toBe(0)
  })

  it(`a recipe whose inputs weigh more than ${CHAIN_BYTES_RATIO} times its blob goes out as bytes`, async () => {
    const x = put(randomBytes(64 * 1024))
    await store.publish({ id: 'a', manifest: Buffer.from('a'), blobs: [x] }, readBlob)
    // A small blob derivable from a big one: keeping the big one alive for it would cost more than a copy.
    const small = put(made([x]).subarray(0, 1024))
    const entry = await store.publish(
      { id: 'b', manifest: Buffer.from('b'), blobs: [small], recipes: new Map([[small, recipe([x], 1024)]]) },
      readBlob,
    )
    expect(entry.blobs).toHaveLength(1)
    expect(entry.blobs[0]).toHaveLength(3) // bytes, no recipe inputs
    expect(entry.blobs[0]![2]).toBe(1024)
  })
})
