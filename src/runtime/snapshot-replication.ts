import { Packr } from 'msgpackr'
import type {
  BlobRecipe,
  CollectProgress,
  Derive,
  IndexEntry,
  RecipeStats,
  SnapshotFeeds,
} from '../../overlay/index.ts'
import {
  ChunkKind,
  chunkSize,
  deltaRefs,
  emptyHash,
  fromHex,
  HASH_ALGS,
  type HashAlg,
  type Manifest,
  neededBlobs,
  type SnapshotStore,
  type TakeResult,
  toHex,
} from '../../snapshot/index.ts'
import type { SnapshotRef } from '../core/types.ts'
import { packPublished, unpackPublished } from './snapshot-index.ts'

/**
 * How engine snapshots travel through the overlay. A rebase makes a derived base (same content as the
 * snapshot it came from, every chunk whole); it is what the server publishes and indexes, so the next
 * snapshot's deltas are against it. Its new chunks go out as recipes (delta blob applied to old base
 * chunk, both already replicated or sent once as the delta), never as bytes: a holder that derived the
 * chunk itself skips it, any other node derives it from the inputs and checks the hash.
 */

/** Recipe payload of one derived base chunk: decode delta `b` over base chunk `s` ('' = empty base). */
interface ChunkRecipe {
  v: 1
  alg: HashAlg
  k: ChunkKind
  size: number
  b: string
  s: string
}

const packr = new Packr({ useRecords: false })

/** The chunks of a derived base that its source snapshot's deltas make from the old base. */
export async function baseRecipes(store: SnapshotStore, m: Manifest): Promise<Map<string, BlobRecipe>> {
  const recipes = new Map<string, BlobRecipe>()
  const source = m.derived_from ? await store.getManifest(m.derived_from) : undefined
  if (!source) return recipes
  for (const part of source.parts) {
    part.chunks.forEach((c, index) => {
      if (c.k !== ChunkKind.DELTA && c.k !== ChunkKind.PAGES) return
      const { delta_blob: b, base_chunk: s, delta_bytes } = deltaRefs(source, c)
      const size = chunkSize(source, part, index)
      const body: ChunkRecipe = { v: 1, alg: source.hash_alg, k: c.k, size, b, s }
      // The old base chunk is published already (its exact size comes from there): `size` is a hint.
      recipes.set(toHex(c.h), {
        inputs: s === '' ? [b] : [b, s],
        recipe: packr.pack(body),
        size_bytes: size,
        input_bytes: s === '' ? [delta_bytes] : [delta_bytes, size],
      })
    })
  }
  return recipes
}

function parseChunkRecipe(bytes: Uint8Array): ChunkRecipe {
  const r = packr.unpack(bytes) as Partial<ChunkRecipe>
  const hex = (v: unknown, empty_ok: boolean) =>
    typeof v === 'string' && ((empty_ok && v === '') || /^[0-9a-f]{64,128}$/.test(v))
  if (
    r?.v !== 1 ||
    !HASH_ALGS.includes(r.alg as HashAlg) ||
    (r.k !== ChunkKind.DELTA && r.k !== ChunkKind.PAGES) ||
    !Number.isInteger(r.size) ||
    r.size! < 0 ||
    !hex(r.b, false) ||
    !hex(r.s, true)
  ) {
    throw new Error('malformed chunk recipe')
  }
  return r as ChunkRecipe
}

/** Derives a chunk from its recipe with inputs read (verified) from the local store. */
export function chunkDeriver(store: SnapshotStore): Derive {
  return async (hash, recipe) => {
    const r = parseChunkRecipe(recipe)
    const blob = await store.readBlob(r.b)
    const base = r.s === '' ? new Uint8Array(0) : await store.readBlob(r.s)
    if (!blob || !base) throw new Error(`chunk ${hash}: recipe input missing here`)
    // The decoder refuses a base that is not `s` and an output that does not hash to `hash`.
    return store.pool.decode({
      alg: r.alg,
      kind: r.k,
      hash: fromHex(hash),
      size_bytes: r.size,
      blob,
      base,
      base_hash: r.s === '' ? emptyHash(r.alg) : fromHex(r.s),
    })
  }
}

/** The engine snapshot that stands for a take: the derived base when it rebased. */
export function publishedManifest(result: TakeResult): Manifest {
  return result.rebased ?? result.manifest
}

/** Append `manifest` (a take's published manifest) to this node's core under the core's `ref`. */
export async function publishSnapshot(
  overlay: SnapshotFeeds,
  store: SnapshotStore,
  ref: SnapshotRef,
  manifest: Manifest,
): Promise<IndexEntry> {
  const manifest_bytes = await store.getManifestBytes(manifest.id)
  if (!manifest_bytes) throw new Error(`manifest ${manifest.id} just written is missing`)
  return overlay.publish(
    {
      id: ref.id,
      manifest: packPublished(ref, manifest_bytes),
      blobs: [...neededBlobs(manifest).keys()],
      recipes: await baseRecipes(store, manifest),
    },
    async (hash) => {
      const bytes = await store.readBlob(hash)
      if (!bytes) throw new Error(`blob ${hash} of snapshot ${manifest.id} is missing locally`)
      return bytes
    },
  )
}

export interface CollectedSnapshot {
  ref: SnapshotRef
  manifest: Manifest
  bytes_total: number
  stats: RecipeStats
}

/**
 * Make snapshot `id` of `writer` complete in the local store: blobs held here are skipped, recipes
 * derived, the rest fetched (each checked by hash). Throws when it cannot be completed. Nothing may remove
 * blobs from `store` meanwhile (the runtime runs it in its store queue, as it runs every gc): the blobs it
 * saw or wrote prove the snapshot complete without a second stat of each.
 */
export async function collectSnapshot(
  overlay: SnapshotFeeds,
  store: SnapshotStore,
  writer: string,
  id: string,
  onProgress: (progress: CollectProgress) => void,
  /** Validates the published ref (throws on a bad one) before anything is stored under it. */
  checkRef: (ref: SnapshotRef) => SnapshotRef,
): Promise<CollectedSnapshot> {
  // Blobs seen here or written by this collect: with them the completeness check needs no second pass.
  const present = new Set<string>()
  const result = await overlay.collect(
    writer,
    id,
    async (hash, bytes) => {
      await store.putBlob(hash, bytes)
      present.add(hash)
    },
    onProgress,
    {
      have: async (hash) => {
        const held = await store.hasBlob(hash)
        if (held) present.add(hash)
        return held
      },
      derive: chunkDeriver(store),
    },
  )
  const unpacked = unpackPublished(result.manifest)
  const ref = checkRef(unpacked.ref)
  const stored = await store.putManifest(unpacked.manifest)
  if (!store.markCompleteFrom(stored, present) && !(await store.isComplete(stored.id)))
    throw new Error(`snapshot ${id} is incomplete after collect`)
  return { ref, manifest: stored, bytes_total: result.bytes_total, stats: result.stats }
}
