/**
 * In-process nodes for the rebase replication test and measurement: a real Federation (hyperswarm on a
 * local testnet, hypercore store) plus a snapshot engine store, wired the way src/runtime/node.ts wires
 * them (snapshot-replication.ts), without the core or a service. `mode: 'main'` replays what node.ts did
 * before recipes (publish the take's own manifest with every needed blob, index it, so the base never
 * moved); `'resend'` publishes the derived base with every needed blob (the base moves, its image is sent
 * again); `'recipes'` is the runtime as it is.
 */
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { createLogger } from '../../lib/log.ts'
import { Federation } from '../../overlay/federation.ts'
import { identityFromSeed } from '../../overlay/keys.ts'
import type { BlobRecipe } from '../../overlay/recipes.ts'
import { type CodecPool, createCodecPool } from '../../snapshot/codec-pool.ts'
import { type RebasePolicy, SnapshotEngine } from '../../snapshot/engine.ts'
import { imageFromFile } from '../../snapshot/image.ts'
import { deltaBytes, type Manifest, neededBlobs } from '../../snapshot/manifest.ts'
import { SnapshotStore } from '../../snapshot/store.ts'
import type { SnapshotRef } from '../../src/core/types.ts'
import { packPublished } from '../../src/runtime/snapshot-index.ts'
import {
  baseRecipes,
  type CollectedSnapshot,
  collectSnapshot,
  publishedManifest,
  publishSnapshot,
} from '../../src/runtime/snapshot-replication.ts'

export type PublishMode = 'main' | 'resend' | 'recipes'

export interface NodeSetup {
  dir: string
  name: string
  bootstrap: { host: string; port: number }[]
  secret: Buffer
  seed: Buffer
  keep: number
  chunk_bytes: number
  rebase?: Partial<RebasePolicy>
  mode?: PublishMode
  replication_factor?: number
  /** false: keep only the overlay's placement share, collect nothing into the snapshot store. */
  collect?: boolean
}

interface Held {
  ref: SnapshotRef
  engine_id: string
}

export class RebaseNode {
  readonly key: string
  readonly held = new Map<string, Held>()
  /** Snapshots whose placement share this node holds (`snapshot-held`). */
  readonly placed = new Set<string>()
  /** Bytes of blocks downloaded from each writer's core. */
  readonly downloaded = new Map<string, number>()
  readonly collected: CollectedSnapshot[] = []
  readonly failures: { id: string; error: Error }[] = []
  private seq = 0
  private queue: Promise<unknown> = Promise.resolve()
  private readonly waiters: (() => void)[] = []

  private constructor(
    readonly setup: NodeSetup,
    readonly federation: Federation,
    readonly pool: CodecPool,
    readonly store: SnapshotStore,
    readonly engine: SnapshotEngine,
  ) {
    this.key = federation.key
    federation.on('snapshot-held', (info: { writer: string; id: string }) => {
      this.placed.add(info.id)
      if (setup.collect === false) this.wake()
      else void this.fetch(info.writer, info.id)
    })
  }

  static async start(setup: NodeSetup): Promise<RebaseNode> {
    const dir = join(setup.dir, setup.name)
    await mkdir(dir, { recursive: true })
    const federation = new Federation({
      keyPair: identityFromSeed(setup.seed),
      secret: setup.secret,
      bootstrap: setup.bootstrap,
      host: '127.0.0.1',
      storageDir: join(dir, 'overlay'),
      name: setup.name,
      priority: 0,
      validate: (msg) => ({ ok: true, value: msg }),
      log: createLogger({ name: setup.name, level: 'silent' }),
      replication_factor: setup.replication_factor ?? 0,
      block_timeout_ms: 2000,
      collect_attempts: 10,
    })
    const pool = createCodecPool({ threads: 1 })
    const store = await SnapshotStore.open(join(dir, 'snapshots'), pool)
    const engine = new SnapshotEngine({
      store,
      node: federation.key,
      chunk_bytes: setup.chunk_bytes,
      retain_newest: setup.keep,
      ...(setup.rebase ? { rebase: setup.rebase } : {}),
    })
    const node = new RebaseNode(setup, federation, pool, store, engine)
    await federation.start()
    return node
  }

  private serial<T>(work: () => Promise<T>): Promise<T> {
    const run = this.queue.then(work)
    this.queue = run.catch(() => {})
    return run
  }

  /** Bytes of the distinct blocks its kept (not forgotten) snapshots list in this node's own core. */
  keptBytes(): number {
    const blocks = new Map<number, number>()
    for (const entry of this.federation.store.snapshots(this.key)) {
      for (const [, block, size] of entry.blobs) blocks.set(block, size)
    }
    return [...blocks.values()].reduce((sum, size) => sum + size, 0)
  }

  /** Count the bytes downloaded from `writer` from now on (call before it publishes). */
  async count(writer: string): Promise<void> {
    const view = await this.federation.store.view(writer)
    view.core.on('download', (_index: number, bytes: number) => {
      this.downloaded.set(writer, (this.downloaded.get(writer) ?? 0) + bytes)
    })
  }

  /**
   * Server side: snapshot `image`, publish it, keep the newest `keep`. Returns bytes appended to the core.
   * `alter` changes the recipes published (a lying or broken writer).
   */
  async take(
    image: Buffer,
    alter?: (recipes: Map<string, BlobRecipe>) => Map<string, BlobRecipe>,
  ): Promise<{ appended_bytes: number; manifest: Manifest; rebased: boolean; id: string }> {
    return this.serial(async () => {
      const path = join(this.setup.dir, `${this.setup.name}.img`)
      await writeFile(path, image)
      const seq = ++this.seq
      const head = [...this.held.values()].at(-1)
      const time_ms = Date.now()
      const result = await this.engine.take(imageFromFile(path), {
        term: 1,
        parent: head?.engine_id ?? null,
        time_ms,
      })
      const ref: SnapshotRef = {
        id: `${this.key}:1:${seq}`,
        writer: this.key,
        term: 1,
        seq,
        time_ms,
        size_bytes: deltaBytes(result.manifest),
        lineage: [{ writer: this.key, term: 1, seq, time_ms }],
      }
      const core = (await this.federation.store.view(this.key)).core
      const before = core.byteLength
      const mode = this.setup.mode ?? 'recipes'
      const manifest = mode === 'main' ? result.manifest : publishedManifest(result)
      if (mode === 'recipes' && !alter)
        await publishSnapshot(this.federation.store, this.store, ref, manifest)
      else {
        await this.federation.store.publish(
          {
            id: ref.id,
            manifest: packPublished(ref, (await this.store.getManifestBytes(manifest.id))!),
            blobs: [...neededBlobs(manifest).keys()],
            ...(alter ? { recipes: alter(await baseRecipes(this.store, manifest)) } : {}),
          },
          async (hash) => (await this.store.readBlob(hash))!,
        )
      }
      this.held.set(ref.id, { ref, engine_id: manifest.id })
      await this.collectGarbage()
      const rebased = result.rebased !== undefined
      return { appended_bytes: core.byteLength - before, manifest, rebased, id: ref.id }
    })
  }

  private wake(): void {
    for (const wake of this.waiters.splice(0)) wake()
  }

  /** Collect snapshot `id` of `writer` into the snapshot store (as node.ts replicate). */
  fetch(writer: string, id: string): Promise<void> {
    return this.serial(() => this.replicate(writer, id))
  }

  private async replicate(writer: string, id: string): Promise<void> {
    if (this.held.has(id)) return
    try {
      const got = await collectSnapshot(
        this.federation.store,
        this.store,
        writer,
        id,
        () => {},
        (ref) => ref,
      )
      this.held.set(id, { ref: got.ref, engine_id: got.manifest.id })
      this.collected.push(got)
      await this.collectGarbage()
    } catch (error) {
      this.failures.push({ id, error: error as Error })
    }
    this.wake()
  }

  /** As node.ts collectGarbage: keep the newest `keep` refs, forget the rest here and in the overlay. */
  private async collectGarbage(): Promise<void> {
    const refs = [...this.held.values()].sort((a, b) => b.ref.seq - a.ref.seq)
    const drop = refs.slice(this.setup.keep)
    if (drop.length === 0) return
    for (const d of drop) this.held.delete(d.ref.id)
    await this.store.gc(new Set(refs.slice(0, this.setup.keep).map((r) => r.engine_id)))
    await this.federation.forget(drop.map((d) => d.ref.id))
  }

  /** Resolves once snapshot `id` is held here (its placement share, without collect) or failed. */
  async settled(id: string): Promise<void> {
    const done = () =>
      this.setup.collect === false
        ? this.placed.has(id)
        : this.held.has(id) || this.failures.some((f) => f.id === id)
    for (let round = 0; round < 10_000; round++) {
      if (done()) return
      await new Promise<void>((resolve) => this.waiters.push(resolve))
    }
  }

  async close(): Promise<void> {
    await this.queue
    await this.federation.close()
    await this.pool.close()
  }
}
