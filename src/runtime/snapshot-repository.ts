import type { CollectProgress, SnapshotFeeds } from '../../overlay/index.ts'
import { type CodecPool, createCodecPool, SnapshotEngine, SnapshotStore } from '../../snapshot/index.ts'
import { snapshot_ref } from '../core/messages.ts'
import { compareSnapshots } from '../core/ranking.ts'
import type { NodeId, SnapshotRef } from '../core/types.ts'
import { SnapshotIndex } from './snapshot-index.ts'
import { type CollectedSnapshot, collectSnapshot } from './snapshot-replication.ts'

export interface SnapshotRepositoryOptions {
  /** The local store's directory and the index file (runtime/paths.ts). */
  store_dir: string
  index_path: string
  node: NodeId
  /** Snapshots kept (`snapshots.keep`): the engine's retention and `gc`'s limit. */
  keep: number
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
    readonly store: SnapshotStore,
    readonly engine: SnapshotEngine,
    readonly index: SnapshotIndex,
    private readonly keep: number,
  ) {}

  static async open(options: SnapshotRepositoryOptions): Promise<SnapshotRepository> {
    const pool = createCodecPool()
    try {
      const store = await SnapshotStore.open(options.store_dir, pool)
      const engine = new SnapshotEngine({ store, node: options.node, retain_newest: options.keep })
      const index = await SnapshotIndex.open(options.index_path)
      return new SnapshotRepository(pool, store, engine, index, options.keep)
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
    const result = await collectSnapshot(feeds, this.store, writer, id, onProgress, (ref) => {
      const checked = snapshot_ref.safeParse(ref)
      if (!checked.success || checked.data.id !== id || checked.data.writer !== writer) {
        throw new Error(`snapshot ${id} from ${writer.slice(0, 8)} carries a bad ref`)
      }
      return checked.data
    })
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
