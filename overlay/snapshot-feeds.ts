import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { EventEmitter, once } from 'node:events'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import Corestore from 'corestore'
import Hypercore, { type Download } from 'hypercore'
import type { KeyPair } from 'hyperdht'
import { Packr } from 'msgpackr'
import { writeFileAtomic } from '../lib/atomic-write.ts'
import type { Logger } from '../lib/log.ts'
import { assertHypercorePatchesInstalled, WriterFirst } from './hypercore-patches/index.ts'
import {
  type BlobRecipe,
  type BlobRef,
  type CollectOptions,
  encodeRecipeBlock,
  RecipePlanner,
  RecipeResolver,
  type RecipeStats,
  withRecipeInputs,
} from './recipes.ts'
import { rendezvousHolders } from './rendezvous.ts'

/**
 * The snapshots every writer published, one feed (hypercore) per writer, replicated between members
 * (the local store of snapshot/ keeps this node's own copies; this is what travels). Each writer (the node that was server when it took the snapshot) appends to
 * its own hypercore, signed with its identity key, so any node can compute the core key of any writer.
 * Block layout, every block tagged by its first byte:
 *   blob      [0][bytes]                 content-addressed by sha256 hex, appended once per writer
 *   manifest  [1][manifest bytes]        opaque to the overlay (the snapshot engine's format)
 *   index     [2][msgpack IndexBody]     last block of every publish; links to the previous index
 *   recipe    [3][msgpack recipe]        a blob derivable from earlier blobs (recipes.ts), not its bytes
 * Readers read the tail; when it is an index they walk `prev` until they reach a known index.
 * Blocks are encrypted with a key derived from the federation secret (hypercore block encryption).
 */

const TAG_BLOB = 0
const TAG_MANIFEST = 1
const TAG_INDEX = 2
const TAG_RECIPE = 3
const APPEND_BATCH_BYTES = 4 * 1024 * 1024
const MAX_BLOB_BYTES = 8 * 1024 * 1024
/**
 * A connected writer that serves nothing this long while blocks are wanted: fetch from the others too.
 * Long: on a starved machine a live writer can go seconds without serving one block.
 */
const WRITER_STALL_MS = 10_000
/**
 * The same while a collect (a restore: the service is down) waits on the core: 1 s, the per-block
 * timeout the runtime gives a restore anyway, so the valve opens by a block's first retry. Measured in
 * the 20-leave test (4 nodes, load ~25 on 2 cores): 2239 whole-snapshot collects, p50 77 ms, p99 719 ms.
 */
const WRITER_URGENT_STALL_MS = 1000

interface IndexBody {
  id: string
  prev: number
  manifest: number
  /**
   * [sha256 hex, block index, size in bytes, recipe inputs]: the snapshot's own blobs (the first `roots`),
   * then the recipe inputs they need transitively (kept, placed and forgotten with the snapshot).
   */
  blobs: BlobRef[]
  /** How many of `blobs` the snapshot itself needs; absent: all (written before recipes). */
  roots?: number
  /**
   * 'archive': a merge archive for one winner, who collects it by id. Never placed, never announced as
   * a snapshot (others do not download it, nobody mistakes it for a snapshot). Absent: a snapshot.
   */
  kind?: 'archive'
  /**
   * The writer's own entries it had not forgotten when it published this one (this one excluded).
   * Readers drop the downloads of the writer's older entries not in it (`place`). Absent: written
   * before this field; every entry then counts as kept.
   */
  live?: string[]
}

export interface IndexEntry extends IndexBody {
  block: number
  bytes_total: number
}

export interface PublishInput {
  id: string
  manifest: Uint8Array
  blobs: string[]
  /** Blobs that may be published as a recipe instead of bytes (see recipes.ts). */
  recipes?: ReadonlyMap<string, BlobRecipe>
  /** 'archive': a merge archive (see IndexBody.kind); default a snapshot. */
  kind?: 'archive'
}

export interface CollectProgress {
  bytes_done: number
  bytes_total: number
}

export interface CollectResult {
  manifest: Uint8Array
  bytes_total: number
  stats: RecipeStats
}

export interface SnapshotFeedsOptions {
  storageDir: string
  keyPair: KeyPair
  blockKey: Buffer
  log: Logger
  /** 0: every node keeps every block. r >= 1: each blob is kept by r members (rendezvous hashing). */
  replication_factor: number
  /** Live members (hex keys, including this node) among which blobs are placed. */
  members: () => string[]
  block_timeout_ms: number
  collect_concurrency: number
  /** Attempts per block in collect before giving up. */
  collect_attempts: number
}

interface WriterView {
  writer: string
  core: Hypercore
  byId: Map<string, IndexEntry>
  byBlock: Map<number, IndexEntry>
  scanning: Promise<void> | null
  rescan: boolean
  /**
   * The writer's core length after its last whole publish, as it announced (0: nothing yet; null: a
   * writer that does not announce). Its last block is an index: the scan reads it, never a tail that
   * may be a blob mid-publish.
   */
  announced: number | null
  /** Per snapshot id: the placement in force and its download. */
  placements: Map<string, { signature: string; download: Download | null; held: boolean }>
  /**
   * From the writer's newest index that carries a live list: its block and the ids it names. An entry
   * below that block and not named was forgotten by the writer (its blocks cleared there, and on every
   * node that keeps the same newest `keep`), so it is not downloaded in the background (`place`).
   */
  writerLive: { block: number; ids: Set<string> } | null
  /** Woken when a scan adds entries (a collect waiting for a snapshot it was told of). */
  waiters: Set<() => void>
}

const packr = new Packr({ useRecords: false })

export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex')
}

/** Key of the snapshot core written by the node with this identity public key. */
export function writerCoreKey(publicKey: Uint8Array): Buffer {
  return Hypercore.key({ version: 1, signers: [{ publicKey: Buffer.from(publicKey) }] })
}

function tagged(tag: number, bytes: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(bytes.byteLength + 1)
  out[0] = tag
  out.set(bytes, 1)
  return out
}

function parseIndex(block: Buffer, index: number): IndexEntry {
  assert.equal(block[0], TAG_INDEX, `block ${index} is not an index`)
  const body = packr.unpack(block.subarray(1)) as IndexBody
  assert(typeof body.id === 'string' && Array.isArray(body.blobs), `block ${index} is a malformed index`)
  assert(
    body.live === undefined || (Array.isArray(body.live) && body.live.every((id) => typeof id === 'string')),
    `block ${index} has a malformed live list`,
  )
  const bytes_total = body.blobs.reduce((sum, [, , size]) => sum + size, 0)
  return { ...body, block: index, bytes_total }
}

async function withTimeout<T>(promise: Promise<T>, timeout_ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: timed out after ${timeout_ms} ms`)), timeout_ms)
  })
  try {
    return await Promise.race([promise, expired])
  } finally {
    clearTimeout(timer)
  }
}

/**
 * Events: `snapshot` ({ writer, id, bytes_total }) when a remote writer's new snapshot becomes known;
 * `snapshot-held` ({ writer, id, blobs }) when this node holds its share of it (everything, or its placement;
 * `blobs`: the hashes of the blobs it holds, of `blobs_total`);
 * `published` ({ id, length }) when this node's own publish is whole (its core is `length` long).
 */
export class SnapshotFeeds extends EventEmitter {
  readonly corestore: Corestore
  readonly selfKey: string
  private readonly views = new Map<string, WriterView>()
  private readonly forgotten = new Set<string>()
  /** Own blobs (and recipes) already in the own core, by hash. */
  private readonly published = new Map<string, BlobRef>()
  private publishing: Promise<unknown> = Promise.resolve()
  private closed = false

  constructor(private readonly options: SnapshotFeedsOptions) {
    super()
    assert(options.replication_factor >= 0, 'replication_factor must be >= 0')
    this.corestore = new Corestore(join(options.storageDir, 'corestore'))
    this.selfKey = options.keyPair.publicKey.toString('hex')
  }

  private get metaPath(): string {
    return join(this.options.storageDir, 'overlay-store.json')
  }

  async ready(): Promise<void> {
    await this.corestore.ready()
    try {
      const meta = JSON.parse(await readFile(this.metaPath, 'utf8')) as { forgotten: string[] }
      for (const id of meta.forgotten) this.forgotten.add(id)
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error
    }
    const own = await this.view(this.selfKey)
    await this.scan(own)
    this.rebuildPublished()
  }

  /** Replicate every core over an admitted data connection (the hypercore patches must be in by now). */
  replicate(conn: Parameters<Corestore['replicate']>[0]): void {
    assertHypercorePatchesInstalled()
    this.corestore.replicate(conn)
  }

  /** Open (or return) the view of one writer's core; replication starts on every admitted connection. */
  async view(writer: string): Promise<WriterView> {
    let view = this.views.get(writer)
    if (view) return view
    const publicKey = Buffer.from(writer, 'hex')
    assert.equal(publicKey.byteLength, 32, 'writer key must be 32 bytes hex')
    const encryption = { key: this.options.blockKey }
    const core =
      writer === this.selfKey
        ? this.corestore.get({ keyPair: this.options.keyPair, encryption })
        : this.corestore.get({ key: writerCoreKey(publicKey), encryption })
    view = {
      writer,
      core,
      byId: new Map(),
      byBlock: new Map(),
      scanning: null,
      rescan: false,
      announced: null,
      placements: new Map(),
      writerLive: null,
      waiters: new Set(),
    }
    this.views.set(writer, view)
    await core.ready()
    if (writer !== this.selfKey) {
      const v = view
      // A writer that announces its publishes is read when it does; one that never did (an older
      // version) on every append, guessing from the tail.
      core.on('append', () => {
        if (v.announced === null) void this.scan(v)
      })
      core.on('peer-add', () => void this.scan(v))
      void this.scan(v)
    }
    return view
  }

  /**
   * `writer` announced that its core is `length` long after its last whole publish (its pings carry it):
   * read that index. Connected during a publish, a reader that looked at every append's tail fetched the
   * last blob of each append (a quarter of the data with 1 MiB blobs in 4 MiB appends), also blobs its
   * placement does not hold.
   */
  announced(writer: string, length: number): void {
    assert(Number.isSafeInteger(length) && length >= 0, 'announced length must be a count')
    if (this.closed || writer === this.selfKey) return
    this.view(writer).then(
      (view) => {
        if (view.announced !== null && length <= view.announced) return
        view.announced = length
        void this.scan(view)
      },
      (error) => this.options.log.warn({ err: error, writer }, 'cannot open writer core'),
    )
  }

  /** Length of this node's core after its last whole publish (0: nothing published). */
  publishedLength(): number {
    const own = this.views.get(this.selfKey)
    if (!own) return 0
    let last = -1
    for (const block of own.byBlock.keys()) last = Math.max(last, block)
    return last + 1
  }

  /** Start following a writer (called for every admitted peer). */
  follow(writer: string): void {
    if (this.closed || writer === this.selfKey) return
    this.view(writer).catch((error) =>
      this.options.log.warn({ err: error, writer }, 'cannot open writer core'),
    )
  }

  /** Snapshots known from one writer (oldest first), forgotten ones and merge archives excluded. */
  snapshots(writer: string): IndexEntry[] {
    return this.entries(writer).filter((e) => e.kind !== 'archive')
  }

  /** Everything one writer published (oldest first), forgotten entries excluded. */
  private entries(writer: string): IndexEntry[] {
    const view = this.views.get(writer)
    if (!view) return []
    return [...view.byId.values()].filter((e) => !this.forgotten.has(e.id)).sort((a, b) => a.block - b.block)
  }

  private scan(view: WriterView): Promise<void> {
    if (view.scanning) {
      view.rescan = true
      return view.scanning
    }
    view.scanning = (async () => {
      for (let round = 0; round < 1000 && !this.closed; round++) {
        view.rescan = false
        await this.scanOnce(view)
        if (!view.rescan) break
      }
    })()
      .catch((error) =>
        this.options.log.warn({ err: error, writer: view.writer }, 'snapshot index scan failed'),
      )
      .finally(() => {
        view.scanning = null
      })
    return view.scanning
  }

  private async block(view: WriterView, index: number): Promise<Buffer | null> {
    try {
      return await view.core.get(index, { timeout: this.options.block_timeout_ms })
    } catch (error) {
      if (!this.closed) this.options.log.debug({ err: error, writer: view.writer, index }, 'block get failed')
      return null
    }
  }

  private async scanOnce(view: WriterView): Promise<void> {
    const last = (view.announced ?? view.core.length) - 1
    if (last < 0 || view.byBlock.has(last)) return
    const tail = await this.block(view, last)
    if (tail?.[0] !== TAG_INDEX) return // mid-publish: the next append ends with an index
    const fresh: IndexEntry[] = []
    let entry = parseIndex(tail, last)
    for (let steps = 0; steps <= last; steps++) {
      fresh.push(entry)
      if (entry.prev < 0 || view.byBlock.has(entry.prev)) break
      const previous = await this.block(view, entry.prev)
      if (!previous) throw new Error(`index block ${entry.prev} unavailable`)
      entry = parseIndex(previous, entry.prev)
    }
    const newest = fresh[0]!
    if (newest.live && (view.writerLive === null || newest.block > view.writerLive.block)) {
      view.writerLive = { block: newest.block, ids: new Set(newest.live) }
    }
    for (const e of fresh.reverse()) {
      view.byId.set(e.id, e)
      view.byBlock.set(e.block, e)
      if (view.writer !== this.selfKey && !this.forgotten.has(e.id) && e.kind !== 'archive') {
        this.emit('snapshot', { writer: view.writer, id: e.id, bytes_total: e.bytes_total })
      }
    }
    for (const wake of view.waiters) wake()
    view.waiters.clear()
    this.place(view)
  }

  /** Re-evaluate what this node keeps of every writer's snapshots (after membership changes). */
  replace(): void {
    for (const view of this.views.values()) this.place(view)
  }

  private myBlocks(view: WriterView, entry: IndexEntry): number[] {
    const r = this.options.replication_factor
    const members = r > 0 ? this.options.members().filter((m) => m !== view.writer) : []
    if (r > 0) assert(members.includes(this.selfKey), 'members() must include this node')
    const blobs = entry.blobs.filter(
      ([hash]) => r === 0 || rendezvousHolders(hash, members, r).includes(this.selfKey),
    )
    return [entry.manifest, ...blobs.map(([, block]) => block)].sort((a, b) => a - b)
  }

  /** Per remote writer: take its blocks from the writer while it is connected (hypercore-patches/writer-first.ts). */
  private readonly downloadPolicies = new Map<string, WriterFirst>()
  /** Writers whose pings say they are leaving. */
  private readonly leavingWriters = new Set<string>()

  /** A peer's role as its pings tell it: a leaving writer is not waited on (hypercore-patches/writer-first.ts). */
  writerRole(writer: string, role: string): void {
    const leaving = role === 'leaving'
    if (leaving) this.leavingWriters.add(writer)
    else this.leavingWriters.delete(writer)
    this.downloadPolicies.get(writer)?.setLeaving(leaving)
  }

  private downloadPolicy(view: WriterView): WriterFirst {
    let policy = this.downloadPolicies.get(view.writer)
    if (!policy) {
      const wanting = () => [...view.placements.values()].some((p) => !p.held)
      const onFallback = () =>
        this.options.log.warn({ writer: view.writer }, 'writer serves nothing: fetching from every peer')
      const onDisabled = (error: unknown) =>
        this.options.log.error(
          { err: error, writer: view.writer },
          'writer-first download policy failed and is off for this writer: fetching from every peer',
        )
      policy = new WriterFirst(view.core, {
        writer: view.writer,
        stall_ms: WRITER_STALL_MS,
        urgent_stall_ms: WRITER_URGENT_STALL_MS,
        wanting,
        onFallback,
        onDisabled,
      })
      policy.setLeaving(this.leavingWriters.has(view.writer))
      this.downloadPolicies.set(view.writer, policy)
    }
    return policy
  }

  /**
   * The writer forgot this entry (its newest live list, published after it, does not name it). A node
   * that starts or rejoins reads the writer's whole history, mostly forgotten by everyone while it was
   * away but never forgotten here; placed, each was a download nobody can serve, and past hypercore's 64
   * ranges per peer update (replicator.js MAX_RANGES, picked at random) the live snapshots' downloads
   * were rarely tried: a rejoined node held none of the server's snapshots for a minute (issue 24).
   * Only these are left out: every snapshot the writer still keeps is placed, intermediate ones too
   * (a dead-fork merge waits for them). They stay collectable by id.
   */
  private writerForgot(view: WriterView, entry: IndexEntry): boolean {
    const live = view.writerLive
    return live !== null && entry.block < live.block && !live.ids.has(entry.id)
  }

  private place(view: WriterView): void {
    if (this.closed || view.writer === this.selfKey) return
    this.downloadPolicy(view)
    for (const entry of view.byId.values()) {
      if (this.forgotten.has(entry.id) || entry.kind === 'archive') continue
      if (this.writerForgot(view, entry)) {
        view.placements.get(entry.id)?.download?.destroy()
        view.placements.delete(entry.id)
        continue
      }
      const blocks = this.myBlocks(view, entry)
      const signature = blocks.join(',')
      const current = view.placements.get(entry.id)
      if (current?.signature === signature) continue
      current?.download?.destroy()
      const placement = { signature, download: view.core.download({ blocks }), held: false }
      view.placements.set(entry.id, placement)
      placement.download.done().then(
        () => {
          if (view.placements.get(entry.id) !== placement || placement.held || this.closed) return
          placement.held = true
          const mine = new Set(blocks)
          const blobs = entry.blobs.filter(([, block]) => mine.has(block)).map(([hash]) => hash)
          this.emit('snapshot-held', {
            writer: view.writer,
            id: entry.id,
            blobs,
            blobs_total: entry.blobs.length,
          })
        },
        () => {}, // destroyed by a newer placement, forget or close
      )
    }
  }

  private rebuildPublished(): void {
    this.published.clear()
    for (const entry of this.entries(this.selfKey)) {
      for (const ref of entry.blobs) this.published.set(ref[0], ref)
    }
  }

  /** Append a snapshot to this node's core. Blobs already published (and not forgotten) are reused. */
  publish(input: PublishInput, readBlob: (hash: string) => Promise<Uint8Array>): Promise<IndexEntry> {
    const run = this.publishing.then(() => this.publishNow(input, readBlob))
    this.publishing = run.catch(() => {})
    return run
  }

  private async publishNow(
    input: PublishInput,
    readBlob: (hash: string) => Promise<Uint8Array>,
  ): Promise<IndexEntry> {
    const own = await this.view(this.selfKey)
    assert(!own.byId.has(input.id), `snapshot ${input.id} already published`)
    const core = own.core
    let next = core.length
    let batch: Buffer[] = []
    let batch_bytes = 0
    const flush = async () => {
      if (batch.length > 0) await core.append(batch)
      batch = []
      batch_bytes = 0
    }
    const added = new Map<string, BlobRef>()
    const lookup = (hash: string) => this.published.get(hash) ?? added.get(hash)
    const recipes = input.recipes ?? new Map<string, BlobRecipe>()
    const planner = new RecipePlanner(recipes, lookup)
    const append = async (hash: string): Promise<BlobRef> => {
      const known = lookup(hash)
      if (known) return known
      const recipe = recipes.get(hash)
      let ref: BlobRef
      if (recipe && planner.asRecipe(hash)) {
        // Inputs first: a recipe only refers to earlier blocks, so chains always end.
        for (const i of recipe.inputs) await append(i)
        const block = encodeRecipeBlock(hash, recipe)
        batch.push(tagged(TAG_RECIPE, block))
        ref = [hash, next++, block.byteLength, [...recipe.inputs]]
      } else {
        const bytes = await readBlob(hash)
        assert(bytes.byteLength <= MAX_BLOB_BYTES, `blob ${hash} is ${bytes.byteLength} bytes`)
        assert.equal(sha256Hex(bytes), hash, `blob ${hash} does not match its hash`)
        batch.push(tagged(TAG_BLOB, bytes))
        batch_bytes += bytes.byteLength
        ref = [hash, next++, bytes.byteLength]
      }
      added.set(hash, ref)
      if (batch_bytes >= APPEND_BATCH_BYTES) await flush()
      return ref
    }
    const roots: BlobRef[] = []
    for (const hash of new Set(input.blobs)) roots.push(await append(hash))
    const entries = withRecipeInputs(roots, lookup)
    const manifest = next++
    const prev = [...own.byBlock.keys()].reduce((a, b) => Math.max(a, b), -1)
    const live = [...own.byId.values()].filter((e) => !this.forgotten.has(e.id)).map((e) => e.id)
    const body: IndexBody = { id: input.id, prev, manifest, blobs: entries, roots: roots.length, live }
    if (input.kind === 'archive') body.kind = 'archive'
    batch.push(tagged(TAG_MANIFEST, input.manifest), tagged(TAG_INDEX, packr.pack(body)))
    await flush()
    const entry = parseIndex(tagged(TAG_INDEX, packr.pack(body)), next)
    assert.equal(core.length, next + 1, 'own core grew during publish')
    own.byId.set(entry.id, entry)
    own.byBlock.set(entry.block, entry)
    for (const [hash, pos] of added) this.published.set(hash, pos)
    this.emit('published', { id: entry.id, length: core.length })
    return entry
  }

  /**
   * Fetch every blob of snapshot `id` by `writer` from whichever peers hold it, verify each by hash and
   * hand it to `sink` (calls are serialised). Throws if a blob stays unavailable after the retries.
   */
  async collect(
    writer: string,
    id: string,
    sink: (hash: string, bytes: Uint8Array) => Promise<void>,
    onProgress: (progress: CollectProgress) => void = () => {},
    options: CollectOptions = {},
  ): Promise<CollectResult> {
    const view = await this.view(writer)
    // A restore waits on these blocks: a writer that serves nothing is not waited on for long.
    const release = writer === this.selfKey || this.closed ? () => {} : this.downloadPolicy(view).urgent()
    try {
      return await this.collectFrom(view, id, sink, onProgress, options)
    } finally {
      release()
    }
  }

  /**
   * The published manifest block of snapshot `id` (a share holder's view of a snapshot under r-way
   * replication: it knows what the snapshot is without collecting its blobs).
   */
  async manifest(writer: string, id: string): Promise<Buffer> {
    const view = await this.view(writer)
    const entry = await this.findEntry(view, id)
    return this.fetchVerified(view, entry.manifest, TAG_MANIFEST, null)
  }

  private async collectFrom(
    view: WriterView,
    id: string,
    sink: (hash: string, bytes: Uint8Array) => Promise<void>,
    onProgress: (progress: CollectProgress) => void,
    options: CollectOptions,
  ): Promise<CollectResult> {
    const entry = await this.findEntry(view, id)
    const manifestBlock = await this.fetchVerified(view, entry.manifest, TAG_MANIFEST, null)
    const progress = { bytes_done: 0, bytes_total: entry.bytes_total }
    onProgress({ ...progress })
    const resolver = new RecipeResolver({
      byHash: new Map(entry.blobs.map((ref) => [ref[0], ref])),
      fetchBlob: ([hash, block]) => this.fetchVerified(view, block, TAG_BLOB, hash),
      fetchRecipe: ([, block]) => this.fetchVerified(view, block, TAG_RECIPE, null),
      sink,
      resolved: ([, , size]) => {
        progress.bytes_done += size
        onProgress({ ...progress })
      },
      verify: sha256Hex,
      options,
    })
    const roots = entry.blobs.slice(0, entry.roots ?? entry.blobs.length)
    let next = 0
    const worker = async () => {
      while (next < roots.length) await resolver.resolve(roots[next++]![0])
    }
    const workers = Math.min(this.options.collect_concurrency, Math.max(1, roots.length))
    await Promise.all(Array.from({ length: workers }, worker))
    await resolver.drain()
    if (progress.bytes_done < progress.bytes_total) {
      // Inputs of recipes whose blob was held here were never needed: the snapshot is complete.
      progress.bytes_done = progress.bytes_total
      onProgress({ ...progress })
    }
    return { manifest: manifestBlock, bytes_total: entry.bytes_total, stats: resolver.stats }
  }

  private async findEntry(view: WriterView, id: string): Promise<IndexEntry> {
    assert(!this.forgotten.has(id), `snapshot ${id} was forgotten`)
    const deadline = performance.now() + this.options.block_timeout_ms * this.options.collect_attempts
    for (let attempt = 0; attempt < 100; attempt++) {
      const found = view.byId.get(id)
      if (found) return found
      const left_ms = deadline - performance.now()
      if (left_ms <= 0) break
      if (view.core.peers.length === 0 && view.writer !== this.selfKey) {
        await withTimeout(once(view.core, 'peer-add'), left_ms, 'waiting for a peer').catch(() => {})
      }
      await withTimeout(view.core.update({ wait: true }), Math.max(1, left_ms), 'update').catch(() => {})
      await this.scan(view)
      if (!view.byId.has(id) && view.core.peers.length > 0) {
        // The entry shows up on an append, or on a scan another path started (the writer's announce of
        // its publish often arrives after the control message that named the snapshot): wait for either.
        const abort = new AbortController()
        let wake = () => {}
        const scanned = new Promise<void>((resolve) => {
          wake = resolve
          view.waiters.add(resolve)
        })
        const appended = once(view.core, 'append', { signal: abort.signal }).catch(() => {})
        await withTimeout(
          Promise.race([appended, scanned]),
          Math.max(1, deadline - performance.now()),
          'append',
        )
          .catch(() => {})
          .finally(() => {
            view.waiters.delete(wake)
            abort.abort()
          })
      }
    }
    throw new Error(`snapshot ${id} of writer ${view.writer.slice(0, 12)} not found`)
  }

  private async fetchVerified(
    view: WriterView,
    block: number,
    tag: number,
    hash: string | null,
  ): Promise<Buffer> {
    let last = 'no attempt'
    for (let attempt = 1; attempt <= this.options.collect_attempts && !this.closed; attempt++) {
      const data = await this.block(view, block)
      if (data === null) {
        last = 'unavailable'
        continue
      }
      const payload = data.subarray(1)
      if (data[0] === tag && (hash === null || sha256Hex(payload) === hash)) return payload
      last = 'hash mismatch'
      await view.core.clear(block) // a bad local copy must not be served again
    }
    throw new Error(`block ${block} of writer ${view.writer.slice(0, 12)} (${hash ?? 'manifest'}): ${last}`)
  }

  /** Forget snapshots: their blocks that no kept snapshot needs are cleared here (every node does the same). */
  async forget(ids: readonly string[]): Promise<void> {
    assertHypercorePatchesInstalled() // keep-tree-nodes: a clear must not delete tree nodes
    for (const id of ids) this.forgotten.add(id)
    await writeFileAtomic(this.metaPath, JSON.stringify({ forgotten: [...this.forgotten] }))
    for (const view of this.views.values()) {
      const keep = new Set<number>()
      const drop = new Set<number>()
      for (const entry of view.byId.values()) {
        const target = this.forgotten.has(entry.id) ? drop : keep
        target.add(entry.manifest)
        for (const [, block] of entry.blobs) target.add(block)
        if (this.forgotten.has(entry.id)) {
          view.placements.get(entry.id)?.download?.destroy()
          view.placements.delete(entry.id)
        }
      }
      for (const block of drop) if (!keep.has(block)) await view.core.clear(block)
    }
    this.rebuildPublished()
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    for (const view of this.views.values()) {
      for (const p of view.placements.values()) p.download?.destroy()
    }
    await this.corestore.close()
  }
}
