import type { ImageWriter } from './atomic-file.ts'
import { ChunkKind } from './codec.ts'
import { encodeImage, type Progress } from './encode.ts'
import { SnapshotError } from './errors.ts'
import { type HashAlg, toHex } from './hash.ts'
import { formatSnapshotId } from './ids.ts'
import { type ImagePart, knownImageBytes, overlapsRanges } from './image.ts'
import { DEFAULT_CHUNK_BYTES } from './limits.ts'
import type { ChunkEntry, Manifest, PartManifest } from './manifest.ts'
import { retainedSnapshots } from './retention.ts'
import type { GcStats, SnapshotInfo, SnapshotStore } from './store.ts'

/**
 * When to move the base forward. Deltas are always against the base, so they grow as the image drifts
 * from it; past a threshold the newest snapshot becomes the new base (derived locally, never resent).
 */
export interface RebasePolicy {
  /** Rebase when one snapshot's delta exceeds this share of the base image. */
  max_delta_ratio: number
  /** Rebase when all stored deltas against the base together exceed this share of the base image. */
  max_total_delta_ratio: number
  /**
   * Rebase when more than this share of the chunks of one part (of at least MIN_LAYOUT_CHUNKS) differ
   * from the base in most of their pages (DELTA or RAW, not PAGES) and the snapshot's delta exceeds
   * `layout_min_delta_ratio` of the base image: the part's layout moved (a QEMU migration stream grew,
   * or shifted where pages turned zero or non-zero), and every later snapshot would pay that delta again
   * against the stale base. Measured on the example guest's stream (81 MB, settled): 18.5 MB per
   * snapshot against the base taken during boot, 0.04-0.35 MB against a recent one.
   */
  max_changed_chunk_share: number
  /**
   * A small shift (a few page records) moves every chunk after it but costs only ~4 KiB per chunk:
   * below this share of the base image a moved layout is not worth a new base on every holder (the
   * settled example guest shifts in most 5 s periods; rebasing each time wrote ~40 MB per holder).
   */
  layout_min_delta_ratio: number
}

export const DEFAULT_REBASE_POLICY: RebasePolicy = {
  max_delta_ratio: 0.5,
  max_total_delta_ratio: 2,
  max_changed_chunk_share: 0.5,
  layout_min_delta_ratio: 0.05,
}

/** Parts smaller than this (in chunks) say nothing about a layout: one changed chunk would be "most". */
export const MIN_LAYOUT_CHUNKS = 4

export interface EngineOptions {
  store: SnapshotStore
  /** This node's public key, hex. */
  node: string
  hash_alg?: HashAlg
  chunk_bytes?: number
  rebase?: Partial<RebasePolicy>
  /**
   * After each snapshot keep only this many newest restorable states (and what they need; see
   * retention.ts for what counts); undefined: no gc.
   */
  retain_newest?: number
}

export interface TakeOptions {
  term: number
  /** Defaults to the newest complete snapshot in the store. */
  parent?: string | null
  time_ms?: number
  on_progress?: Progress
  /**
   * Encode a new base (every chunk raw) instead of deltas against the parent's base: the way out after a
   * snapshot against that base failed. The parent link (lineage) stays.
   */
  fresh_base?: boolean
  /**
   * Leave the retention gc to a later `collectGarbage()` call (the caller runs it once the snapshot is
   * published: it scans every blob, and output commit waits for the snapshot, not for the gc).
   */
  defer_gc?: boolean
}

export interface TakeResult {
  manifest: Manifest
  /** The new base when this snapshot triggered a rebase (same content as `manifest`). */
  rebased?: Manifest
  /** Why: "delta size" (the policy's byte ratios) or "layout of PART moved" (most of its chunks differ). */
  rebase_reason?: string
  gc?: GcStats
  /** Chunks stored as bytes because the codec could not compute their delta (see codec.ts). */
  codec_refusals: number
  /** Chunks whose entry was taken from the parent unread (the capture said they did not change). */
  reused_chunks: number
  /** Where the take's time went (ms): choosing parent and base, encoding, manifest and rebase, gc. */
  timings_ms: { prepare: number; encode: number; finish: number; gc: number }
}

export function shouldRebase(
  policy: RebasePolicy,
  base_bytes: number,
  delta_bytes: number,
  total_delta_bytes: number,
): boolean {
  if (base_bytes === 0) return delta_bytes > 0
  return (
    delta_bytes > policy.max_delta_ratio * base_bytes ||
    total_delta_bytes > policy.max_total_delta_ratio * base_bytes
  )
}

/** The first part (of MIN_LAYOUT_CHUNKS or more) where more than `share` of the chunks moved (see above). */
export function movedPart(parts: readonly PartManifest[], share: number): string | undefined {
  for (const part of parts) {
    if (part.chunks.length < MIN_LAYOUT_CHUNKS) continue
    const changed = part.chunks.filter((c) => c.k === ChunkKind.DELTA || c.k === ChunkKind.RAW).length
    if (changed > share * part.chunks.length) return part.name
  }
  return undefined
}

/** The capture generation every file part names, if they all name the same one. */
function captureGeneration(parts: readonly ImagePart[]): string | undefined {
  let generation: string | undefined
  for (const part of parts) {
    if (!('path' in part) || part.generation === undefined) return undefined
    if (generation !== undefined && part.generation !== generation) return undefined
    generation = part.generation
  }
  return generation
}

/** Writes snapshots of one node into its store: chooses the base, encodes, rebases, collects garbage. */
export class SnapshotEngine {
  private readonly policy: RebasePolicy
  private readonly lastSeq = new Map<number, number>()
  /** The capture generation of the last take and the snapshots it became (itself, a rebase of it). */
  private last_capture: { generation: string; ids: string[] } | undefined

  constructor(private readonly options: EngineOptions) {
    this.policy = { ...DEFAULT_REBASE_POLICY, ...options.rebase }
    if (options.retain_newest !== undefined && options.retain_newest < 1)
      throw new Error('retain_newest must be >= 1')
  }

  get store(): SnapshotStore {
    return this.options.store
  }

  private nextSeq(term: number): number {
    let seq = this.lastSeq.get(term) ?? 0
    for (const info of this.store.listSnapshots()) {
      if (info.node === this.options.node && info.term === term) seq = Math.max(seq, info.seq)
    }
    this.lastSeq.set(term, seq + 1)
    return seq + 1
  }

  /** The base to encode against: the parent's base (or the parent if it is a base), when complete here. */
  private async chooseBase(parent: SnapshotInfo | undefined): Promise<string | null> {
    if (!parent) return null
    const baseId = parent.base ?? parent.id
    if (await this.store.isComplete(baseId)) return baseId
    return (await this.store.materialize(baseId)) ? baseId : null
  }

  /**
   * A crash while a rebase materialized its derived base leaves that base incomplete; finish it (it is
   * rebuilt from old base + delta, both kept by gc), so the base moves forward as the policy decided.
   */
  private async resumeRebase(): Promise<void> {
    const newest = this.store.listSnapshots()[0]
    if (!newest?.derived_from || newest.node !== this.options.node) return
    if (!(await this.store.isComplete(newest.id))) await this.store.materialize(newest.id)
  }

  async take(parts: readonly ImagePart[], options: TakeOptions): Promise<TakeResult> {
    const { store } = this
    const started = performance.now()
    await this.resumeRebase()
    const parent =
      options.parent === undefined
        ? await store.newestComplete()
        : options.parent === null
          ? undefined
          : store.info(options.parent)
    if (options.parent && !parent)
      throw new SnapshotError(`parent snapshot ${options.parent} is not in the store`)
    const baseId = options.fresh_base ? null : await this.chooseBase(parent)
    const hash_alg = this.options.hash_alg ?? 'sha256'
    const chunk_bytes = this.options.chunk_bytes ?? DEFAULT_CHUNK_BYTES
    // Only progress needs the total, and it costs a stat per part (thousands for a state directory).
    const total_bytes = options.on_progress ? await knownImageBytes(parts) : undefined
    let codec_refusals = 0
    let reused_chunks = 0
    const reusable = await this.reusableEntries(parts, parent, baseId, hash_alg, chunk_bytes)
    const generation = captureGeneration(parts)
    this.last_capture = undefined // a failed take leaves nothing to build on
    const prepared = performance.now()
    const encoded = await encodeImage(parts, {
      pool: store.pool,
      alg: hash_alg,
      chunk_bytes,
      ...(baseId ? { base: await store.baseSource(baseId) } : {}),
      sink: { put: (hash, bytes) => store.writeBlobTrusted(toHex(hash), bytes) },
      ...(total_bytes !== undefined ? { total_bytes } : {}),
      ...(options.on_progress ? { on_progress: options.on_progress } : {}),
      on_refused: () => {
        codec_refusals++
      },
      ...(reusable
        ? {
            reuse: (part: ImagePart, index: number, length: number) => {
              const entry = reusable(part, index, length)
              if (entry) reused_chunks++
              return entry
            },
          }
        : {}),
    })
    const encoded_at = performance.now()
    const time_ms = options.time_ms ?? Date.now()
    const seq = this.nextSeq(options.term)
    const manifest: Manifest = {
      v: 1,
      id: formatSnapshotId({ node: this.options.node, term: options.term, seq }),
      node: this.options.node,
      term: options.term,
      seq,
      parent: parent?.id ?? null,
      time_ms,
      base: baseId,
      derived_from: null,
      hash_alg,
      chunk_bytes,
      parts: encoded,
    }
    await store.writeManifest(manifest)
    const timings_ms = { prepare: prepared - started, encode: encoded_at - prepared, finish: 0, gc: 0 }
    const result: TakeResult = { manifest, codec_refusals, reused_chunks, timings_ms }
    if (baseId) {
      const rebase = await this.maybeRebase(manifest, baseId)
      if (rebase) {
        result.rebased = rebase.rebased
        result.rebase_reason = rebase.reason
      }
    }
    if (generation !== undefined)
      this.last_capture = { generation, ids: [manifest.id, ...(result.rebased ? [result.rebased.id] : [])] }
    const finished = performance.now()
    timings_ms.finish = finished - encoded_at
    if (options.defer_gc !== true) {
      const gc = await this.collectGarbage([manifest.id, ...(result.rebased ? [result.rebased.id] : [])])
      if (gc) result.gc = gc
    }
    timings_ms.gc = performance.now() - finished
    return result
  }

  /**
   * Keeps the newest `retain_newest` restorable states (and `also`) and what they need; removes the rest.
   * Nothing to do (undefined) without `retain_newest`.
   */
  async collectGarbage(also: readonly string[] = []): Promise<GcStats | undefined> {
    if (this.options.retain_newest === undefined) return undefined
    const { store } = this
    const all = store.listSnapshots()
    const keep = new Set([
      ...(await retainedSnapshots(all, this.options.retain_newest, (id) => store.isComplete(id))),
      ...also,
    ])
    return store.gc(keep)
  }

  /**
   * Chunk entries of the parent that stay true for this image: the capture names the parent's capture
   * as the one its files' first bytes are unchanged from, and the base is the same (or is the parent,
   * whose RAW chunks become SAME). Anything else, or a parent not complete here: encode everything.
   */
  /** The capture generation of the last take when it became engine snapshot `id`. */
  captureOf(id: string): string | undefined {
    return this.last_capture?.ids.includes(id) ? this.last_capture.generation : undefined
  }

  /** The engine ids the last take became when capture `generation` made it, else an empty list. */
  lastTakeOf(generation: string): string[] {
    return this.last_capture?.generation === generation ? this.last_capture.ids : []
  }

  /**
   * Capture `generation` holds the same files as capture `same_as`, the last take's (nothing copied,
   * grown or removed) and was not taken: the next take reuses chunks as if `generation` had made them.
   */
  adoptSameCapture(same_as: string, generation: string): void {
    const last = this.last_capture
    if (last?.generation === same_as && generation !== same_as)
      this.last_capture = { generation, ids: last.ids }
  }

  private async reusableEntries(
    parts: readonly ImagePart[],
    parent: SnapshotInfo | undefined,
    baseId: string | null,
    hash_alg: HashAlg,
    chunk_bytes: number,
  ): Promise<((part: ImagePart, index: number, length: number) => ChunkEntry | undefined) | undefined> {
    const last = this.last_capture
    if (!last || !parent || baseId === null || !last.ids.includes(parent.id)) return undefined
    const since = (part: ImagePart) =>
      'path' in part && (part.unchanged?.since === last.generation || part.changed?.since === last.generation)
    if (!parts.some(since)) return undefined
    const previous = await this.store.getManifest(parent.id)
    if (!previous || previous.hash_alg !== hash_alg || previous.chunk_bytes !== chunk_bytes) return undefined
    const parent_is_base = previous.id === baseId
    if (!parent_is_base && previous.base !== baseId) return undefined
    if (!(await this.store.isComplete(parent.id))) return undefined
    const by_name = new Map(previous.parts.map((part) => [part.name, part]))
    return (part, index, length) => {
      if (!('path' in part) || !since(part)) return undefined
      const old = by_name.get(part.name)
      const entry = old?.chunks[index]
      if (!old || !entry) return undefined
      const start = index * chunk_bytes
      if (part.unchanged?.since === last.generation) {
        // The same span, inside the unchanged bytes: the same content, so the same entry.
        if (part.unchanged.bytes > old.size_bytes || start + length > part.unchanged.bytes) return undefined
      } else if (part.changed && overlapsRanges(part.changed.ranges, start, start + length)) return undefined
      if (Math.min(chunk_bytes, old.size_bytes - start) !== length) return undefined
      return parent_is_base ? { k: ChunkKind.SAME, h: entry.h } : entry
    }
  }

  private async maybeRebase(
    snapshot: Manifest,
    baseId: string,
  ): Promise<{ rebased: Manifest; reason: string } | undefined> {
    const { store } = this
    const base = store.info(baseId)!
    const total = store
      .listSnapshots()
      .filter((info) => info.base === baseId)
      .reduce((sum, info) => sum + info.delta_bytes, 0)
    const delta = store.info(snapshot.id)!.delta_bytes
    const moved = movedPart(snapshot.parts, this.policy.max_changed_chunk_share)
    let reason: string
    if (shouldRebase(this.policy, base.image_bytes, delta, total)) reason = 'delta size'
    else if (moved !== undefined && delta > this.policy.layout_min_delta_ratio * base.image_bytes)
      reason = `layout of ${moved} moved`
    else return undefined
    const seq = this.nextSeq(snapshot.term)
    const rebased: Manifest = {
      ...snapshot,
      id: formatSnapshotId({ node: snapshot.node, term: snapshot.term, seq }),
      seq,
      parent: snapshot.id,
      base: null,
      derived_from: snapshot.id,
      parts: snapshot.parts.map((part) => ({
        ...part,
        chunks: part.chunks.map((c) => ({ k: ChunkKind.RAW, h: c.h })),
      })),
    }
    // Materializing reads the manifest; a crash before it completes leaves an incomplete derived base,
    // which newestComplete skips and gc keeps the source of, so nothing earlier is lost.
    await store.writeManifest(rebased)
    if (!(await store.materialize(rebased.id)))
      throw new SnapshotError(`rebase ${rebased.id}: could not derive every chunk`)
    return { rebased, reason }
  }

  /** Restore the newest snapshot that restores cleanly, skipping incomplete or corrupt ones. */
  async restoreNewest(
    writerFor: () => ImageWriter,
    on_problem?: (id: string, error: Error) => void,
  ): Promise<Manifest> {
    for (const info of this.store.listSnapshots()) {
      if (!(await this.store.isComplete(info.id))) {
        on_problem?.(info.id, new SnapshotError(`snapshot ${info.id} is incomplete`))
        continue
      }
      try {
        return await this.store.restore(info.id, writerFor())
      } catch (error) {
        if (!(error instanceof SnapshotError)) throw error
        on_problem?.(info.id, error)
      }
    }
    throw new SnapshotError('no snapshot in the store restores cleanly')
  }
}
