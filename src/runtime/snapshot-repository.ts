import type { Logger } from '../../lib/log.ts'
import type { CollectProgress, SnapshotFeeds } from '../../overlay/index.ts'
import {
  ChunkError,
  type CodecPool,
  createCodecPool,
  type ImagePart,
  type ImageWriter,
  SnapshotEngine,
  SnapshotStore,
  type TakeResult,
} from '../../snapshot/index.ts'
import { snapshot_ref } from '../core/messages.ts'
import { compareSnapshots } from '../core/ranking.ts'
import type { NodeId, SnapshotRef } from '../core/types.ts'
import { SnapshotIndex, unpackPublished } from './snapshot-index.ts'
import {
  type CollectedSnapshot,
  collectSnapshot,
  publishedManifest,
  publishSnapshot,
} from './snapshot-replication.ts'
import { WarmStandby } from './warm-standby.ts'

export interface SnapshotRepositoryOptions {
  /** The local store's directory and the index file (runtime/paths.ts). */
  store_dir: string
  index_path: string
  node: NodeId
  /** Snapshots kept (`snapshots.keep`): the engine's retention and `gc`'s limit. */
  keep: number
  log: Logger
  now: () => number
}

/** What `materialise` tells the node of a repair (a timeline stage: `snapshot_repair`, `snapshot_repaired`). */
export type RepairNote = (
  name: 'snapshot_repair' | 'snapshot_repaired',
  fields: Record<string, unknown>,
) => void

/** Checks a published ref against the core's schema and the id and writer it was published under. */
function checkedRef(ref: unknown, writer: string, id: string): SnapshotRef {
  const checked = snapshot_ref.safeParse(ref)
  if (!checked.success || checked.data.id !== id || checked.data.writer !== writer) {
    throw new Error(`snapshot ${id} from ${writer.slice(0, 8)} carries a bad ref`)
  }
  return checked.data
}

/**
 * The one owner of a node's snapshot bytes: the codec pool, the local store (snapshot/), the engine
 * that takes snapshots into it, and the index that maps the core's id (`writer:term:seq`) to the
 * engine's. Every write to the store is serialised here (`serial`): a gc between a collect's blobs and
 * its manifest would delete those blobs as unreferenced.
 */
export class SnapshotRepository {
  private queue: Promise<unknown> = Promise.resolve()

  private constructor(
    private readonly pool: CodecPool,
    private readonly store: SnapshotStore,
    private readonly engine: SnapshotEngine,
    private readonly index: SnapshotIndex,
    private readonly options: SnapshotRepositoryOptions,
  ) {}

  private get keep(): number {
    return this.options.keep
  }

  static async open(options: SnapshotRepositoryOptions): Promise<SnapshotRepository> {
    const pool = createCodecPool()
    try {
      const store = await SnapshotStore.open(options.store_dir, pool)
      const engine = new SnapshotEngine({ store, node: options.node, retain_newest: options.keep })
      const index = await SnapshotIndex.open(options.index_path)
      return new SnapshotRepository(pool, store, engine, index, options)
    } catch (error) {
      await pool.close()
      throw error
    }
  }

  /** Runs `work` after every store write queued before it (take, collect, gc, restore). */
  serial<T>(work: () => Promise<T>): Promise<T> {
    const run = this.queue.then(work)
    this.queue = run.catch(() => {})
    return run
  }

  /** The engine's id of the core's snapshot `id`, if this node holds it. */
  engineId(id: string): string | undefined {
    return this.index.engineId(id)
  }

  /** Whether the core's snapshot `id` is indexed here (its blobs were all collected or taken). */
  has(id: string): boolean {
    return this.index.has(id)
  }

  /** The warm standby (`service.standby: warm`) decodes from this store. */
  warmStandby(state_dir: string): WarmStandby {
    return new WarmStandby({ state_dir, store: this.store, now: this.options.now })
  }

  /**
   * Encodes a capture's `parts` as the core's snapshot `ref`: a delta against the core's `head` when the
   * store still has it, else a full base. Call inside `serial`; the engine's gc waits for `publish`.
   */
  take(
    parts: readonly ImagePart[],
    ref: SnapshotRef,
    head: SnapshotRef | null,
    fresh_base: boolean,
  ): Promise<TakeResult> {
    const parent = head ? this.index.engineId(head.id) : undefined
    // A parent the store no longer has (seen on a server resumed after SIGSTOP, once snapshots of a
    // newer term had replicated to it) would fail every retry: encode a full base instead.
    const missing = parent !== undefined && this.store.info(parent) === undefined
    if (missing)
      this.options.log.warn(
        { event: 'snapshot_parent_missing', id: ref.id, parent },
        'the parent snapshot is gone from the store; this one is a full base',
      )
    return this.engine.take(parts, {
      term: ref.term,
      parent: missing ? null : (parent ?? null),
      time_ms: ref.time_ms,
      fresh_base: fresh_base || missing,
      defer_gc: true, // after the snapshot is published (below): output commit waits for it
    })
  }

  /**
   * Publishes a take (`stored`: its ref with the size) to the overlay, then indexes it. Returns when the
   * overlay had it (`published_ms`, this repository's clock) for the node's timings.
   */
  async publish(
    feeds: SnapshotFeeds,
    stored: SnapshotRef,
    result: TakeResult,
  ): Promise<{ published_ms: number }> {
    // After a rebase the ref stands for the derived base: the next snapshot's deltas are against it.
    const manifest = publishedManifest(result)
    await publishSnapshot(feeds, this.store, stored, manifest)
    const published_ms = this.options.now()
    await this.index.add(stored, manifest.id)
    return { published_ms }
  }

  /** The capture generation the core's snapshot `id` was taken from (output commit's unchanged check). */
  captureOf(id: string): string | undefined {
    const engine_id = this.index.engineId(id)
    return engine_id === undefined ? undefined : this.engine.captureOf(engine_id)
  }

  /** A capture found unchanged since `same_as` is covered by that snapshot (engine.adoptSameCapture). */
  adoptSameCapture(same_as: string, generation: string): void {
    this.engine.adoptSameCapture(same_as, generation)
  }

  /** Writes the held snapshot `id` into `writer()` (a stopped service's state), in the store queue. */
  writeState(id: string, writer: () => ImageWriter): Promise<void> {
    return this.serial(async () => {
      const engine_id = this.index.engineId(id)
      if (engine_id === undefined) throw new Error(`snapshot ${id} is not in the local store`)
      await this.store.restore(engine_id, writer())
    })
  }

  /**
   * Rebuild `ref` (held here as `engine_id`) into `writer`. A local blob that fails its hash (a disk
   * flipped bits after it was collected) is not a reason to give the snapshot up: other holders have it
   * intact. The bad blobs are removed, the snapshot collected again by `refetch` (each blob checked by
   * hash on the way in) and the rebuild tried once more; only a second failure reaches the caller.
   */
  async materialise(
    ref: SnapshotRef,
    engine_id: string,
    writer: () => ImageWriter,
    refetch: () => Promise<unknown>,
    note: RepairNote,
  ): Promise<void> {
    try {
      await this.serial(() => this.store.restore(engine_id, writer()))
      return
    } catch (error) {
      if (!(error instanceof ChunkError) || error.problem === 'wrong-base') throw error
      const report = await this.serial(() => this.store.verify(engine_id))
      const bad = report.problems.filter((p) => p.problem !== 'missing').map((p) => p.hash)
      // readBlob removes a blob that fails its hash; a truncated one is removed the same way.
      await this.serial(async () => {
        for (const hash of new Set(bad)) await this.store.readBlob(hash).catch(() => {})
      })
      note('snapshot_repair', { id: ref.id, reason: error.message, bad_blobs: bad.length })
      await this.index.remove([ref.id])
      await refetch()
      const again = this.index.engineId(ref.id)
      if (again === undefined) throw error
      await this.serial(() => this.store.restore(again, writer()))
      note('snapshot_repaired', { id: ref.id, bad_blobs: bad.length })
    }
  }

  /** The ref `writer` published as snapshot `id` (its manifest only: r-way replication's share). */
  async publishedRef(feeds: SnapshotFeeds, writer: string, id: string): Promise<SnapshotRef> {
    const { ref } = unpackPublished(await feeds.manifest(writer, id))
    return checkedRef(ref, writer, id)
  }

  /** Every indexed snapshot whose blobs are all in the store, and the newest of them (start-up). */
  async complete(): Promise<{ held: SnapshotRef | null; stored: SnapshotRef[] }> {
    let held: SnapshotRef | null = null
    const stored: SnapshotRef[] = []
    for (const ref of this.index.refs()) {
      const engine_id = this.index.engineId(ref.id)!
      if (!(await this.store.isComplete(engine_id))) continue
      stored.push(ref)
      if (compareSnapshots(ref, held) > 0) held = ref
    }
    return { held, stored }
  }

  /**
   * Collects snapshot `id` that `writer` published (blobs this store lacks, each checked by hash), checks
   * its ref against the core's schema and indexes it. Call inside `serial`.
   */
  async collect(
    feeds: SnapshotFeeds,
    writer: string,
    id: string,
    onProgress: (progress: CollectProgress) => void,
  ): Promise<CollectedSnapshot> {
    const result = await collectSnapshot(feeds, this.store, writer, id, onProgress, (ref) =>
      checkedRef(ref, writer, id),
    )
    await this.index.add(result.ref, result.manifest.id)
    return result
  }

  /**
   * Keeps the newest `keep` snapshots and every pinned one (by core id and engine id); forgets the rest
   * from the index and the store. Returns the core ids dropped (the caller forgets them in the overlay).
   * Call inside `serial`; with `engine_too` the engine's own retention runs first.
   */
  async gc(pinned: (id: string, engine_id: string) => boolean, engine_too: boolean): Promise<string[]> {
    if (engine_too) await this.engine.collectGarbage()
    if (this.index.refs().length <= this.keep) return []
    const refs = this.index.refs().sort((a, b) => compareSnapshots(b, a))
    const keeps = (r: SnapshotRef) => pinned(r.id, this.index.engineId(r.id)!)
    const keep = refs.filter((r, i) => i < this.keep || keeps(r))
    const drop = refs.filter((r, i) => i >= this.keep && !keeps(r)).map((r) => r.id)
    if (drop.length === 0) return []
    await this.index.remove(drop)
    await this.store.gc(new Set(keep.map((r) => this.index.engineId(r.id)!)))
    return drop
  }

  /** How many snapshots are indexed (more than `keep`: a gc has work). */
  get count(): number {
    return this.index.refs().length
  }

  close(): Promise<void> {
    return this.pool.close()
  }
}
