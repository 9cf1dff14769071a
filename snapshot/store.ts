import { mkdir, readdir, readFile, rm, stat, unlink } from 'node:fs/promises'
import { join } from 'node:path'
import { writeFileAtomic } from '../lib/atomic-write.ts'
import type { ImageWriter } from './atomic-file.ts'
import { readWholeFile, recycle } from './buffers.ts'
import { ChunkKind, type FileSpan } from './codec.ts'
import type { CodecPool } from './codec-pool.ts'
import type { BaseChunk, BaseSource, Progress } from './encode.ts'
import { ChunkError, type ChunkProblem } from './errors.ts'
import { algOfHex, emptyHash, hashBytes, sameHash, toHex } from './hash.ts'
import { compareNewestFirst, isSnapshotId } from './ids.ts'
import { SharedExclusiveLock } from './lock.ts'
import {
  chunkSize,
  decodeManifest,
  deltaBytes,
  encodeManifest,
  imageBytes,
  type Manifest,
  neededBlobs,
} from './manifest.ts'
import { type BlobSource, restoreImage } from './restore.ts'
import { OrderedWindow } from './window.ts'

export interface SnapshotInfo {
  id: string
  node: string
  term: number
  seq: number
  parent: string | null
  base: string | null
  derived_from: string | null
  time_ms: number
  image_bytes: number
  /** Bytes this snapshot adds beyond its base. */
  delta_bytes: number
}

export interface BlobProblem {
  part: string
  index: number
  hash: string
  problem: ChunkProblem
  detail: string
}

export interface VerifyReport {
  id: string
  /** Every blob present (intact or not). */
  complete: boolean
  /** Every blob present and matching its hash. */
  ok: boolean
  problems: BlobProblem[]
}

export interface GcStats {
  manifests_removed: number
  blobs_removed: number
  bytes_freed: number
}

function infoOf(m: Manifest): SnapshotInfo {
  return {
    id: m.id,
    node: m.node,
    term: m.term,
    seq: m.seq,
    parent: m.parent,
    base: m.base,
    derived_from: m.derived_from,
    time_ms: m.time_ms,
    image_bytes: imageBytes(m),
    delta_bytes: deltaBytes(m),
  }
}

function isMissing(error: unknown): boolean {
  return (error as NodeJS.ErrnoException).code === 'ENOENT'
}

/**
 * A local on-disk snapshot store: content-addressed blobs (`blobs/ab/<hash>`) and manifests
 * (`manifests/<id>.manifest`). Every file is written atomically (temp + fsync + rename) and a manifest only
 * after all its blobs, so a process killed at any moment leaves every earlier snapshot intact.
 * One process owns a store directory at a time.
 */
export class SnapshotStore {
  private readonly infos = new Map<string, SnapshotInfo>()
  /**
   * Snapshots found complete here. They stay so until gc removes them (gc keeps every blob a kept
   * snapshot needs) or a corrupt blob is deleted (then all are checked again): a take asks for its parent
   * and base each time, and a stat per blob cost ~30 ms of every snapshot under load.
   */
  private readonly complete = new Set<string>()
  private readonly lock = new SharedExclusiveLock()
  private readonly madeDirs = new Set<string>()

  private constructor(
    readonly dir: string,
    readonly pool: CodecPool,
  ) {}

  /** Problems met while opening (unreadable manifests are ignored, not fatal). */
  readonly skipped: { file: string; reason: string }[] = []

  static async open(dir: string, pool: CodecPool): Promise<SnapshotStore> {
    const store = new SnapshotStore(dir, pool)
    await mkdir(join(dir, 'manifests'), { recursive: true })
    await mkdir(join(dir, 'blobs'), { recursive: true })
    for (const file of await readdir(join(dir, 'manifests'))) {
      if (!file.endsWith('.manifest')) continue
      try {
        const m = decodeManifest(await readFile(join(dir, 'manifests', file)))
        if (`${m.id}.manifest` !== file) throw new Error(`holds snapshot ${m.id}`)
        store.infos.set(m.id, infoOf(m))
      } catch (error) {
        store.skipped.push({ file, reason: (error as Error).message })
      }
    }
    return store
  }

  private manifestPath(id: string): string {
    if (!isSnapshotId(id)) throw new Error(`not a snapshot id: ${id}`)
    return join(this.dir, 'manifests', `${id}.manifest`)
  }

  private blobPath(hash: string): string {
    if (!algOfHex(hash)) throw new Error(`not a blob hash: ${hash}`)
    return join(this.dir, 'blobs', hash.slice(0, 2), hash)
  }

  /** Newest first. */
  listSnapshots(): SnapshotInfo[] {
    return [...this.infos.values()].sort(compareNewestFirst)
  }

  info(id: string): SnapshotInfo | undefined {
    return this.infos.get(id)
  }

  async getManifestBytes(id: string): Promise<Uint8Array | undefined> {
    if (!this.infos.has(id)) return undefined
    try {
      return await readFile(this.manifestPath(id))
    } catch (error) {
      if (isMissing(error)) return undefined
      throw error
    }
  }

  async getManifest(id: string): Promise<Manifest | undefined> {
    const bytes = await this.getManifestBytes(id)
    return bytes && decodeManifest(bytes)
  }

  /** Store a manifest received from elsewhere (validated). A derived base is materialized when possible. */
  async putManifest(bytes: Uint8Array): Promise<Manifest> {
    const m = decodeManifest(bytes)
    await this.lock.withShared(async () => {
      await writeFileAtomic(this.manifestPath(m.id), bytes)
      this.infos.set(m.id, infoOf(m))
      this.complete.delete(m.id)
    })
    if (m.derived_from) await this.materialize(m.id)
    return m
  }

  /** Encode and store a manifest written here. Call only once all its blobs are stored. */
  async writeManifest(m: Manifest): Promise<Uint8Array> {
    const bytes = encodeManifest(m)
    await this.lock.withShared(async () => {
      await writeFileAtomic(this.manifestPath(m.id), bytes)
      this.infos.set(m.id, infoOf(m))
      this.complete.delete(m.id)
    })
    return bytes
  }

  async hasBlob(hash: string): Promise<boolean> {
    return stat(this.blobPath(hash)).then(
      () => true,
      (error) => {
        if (isMissing(error)) return false
        throw error
      },
    )
  }

  /** Blob bytes without verification (the decoder verifies what it builds), or undefined if absent. */
  async readBlobUnverified(hash: string): Promise<Uint8Array | undefined> {
    return readWholeFile(this.blobPath(hash))
  }

  /** Verified blob bytes (for sending to a peer); a corrupt blob is deleted so it gets fetched again. */
  async readBlob(hash: string): Promise<Uint8Array | undefined> {
    const bytes = await this.readBlobUnverified(hash)
    if (!bytes) return undefined
    if (toHex(await this.pool.hash(algOfHex(hash)!, Buffer.from(bytes))) !== hash) {
      await unlink(this.blobPath(hash)).catch(() => {})
      this.complete.clear()
      throw new Error(`blob ${hash} is corrupt (hash mismatch); removed`)
    }
    return bytes
  }

  /** Store a blob after checking that `bytes` hash to `hash`. */
  async putBlob(hash: string, bytes: Uint8Array): Promise<void> {
    const alg = algOfHex(hash)
    if (!alg) throw new Error(`not a blob hash: ${hash}`)
    if (toHex(hashBytes(alg, bytes)) !== hash) throw new Error(`blob bytes do not hash to ${hash}`)
    await this.writeBlobTrusted(hash, bytes)
  }

  /** Store a blob whose hash the caller computed itself. */
  async writeBlobTrusted(hash: string, bytes: Uint8Array): Promise<void> {
    await this.lock.withShared(async () => {
      if (await this.hasBlob(hash)) return
      const dir = join(this.dir, 'blobs', hash.slice(0, 2))
      if (!this.madeDirs.has(dir)) {
        await mkdir(dir, { recursive: true })
        this.madeDirs.add(dir)
      }
      await writeFileAtomic(this.blobPath(hash), bytes)
    })
  }

  /** Blobs of a derived base that can be rebuilt here from its source snapshot: content hash -> source. */
  private async derivable(m: Manifest): Promise<Map<string, { b: string; s: string }>> {
    const result = new Map<string, { b: string; s: string }>()
    if (!m.derived_from) return result
    const source = await this.getManifest(m.derived_from)
    if (!source) return result
    const empty = emptyHash(source.hash_alg)
    for (const part of source.parts) {
      for (const c of part.chunks) {
        if (c.k !== ChunkKind.DELTA && c.k !== ChunkKind.PAGES) continue
        const s = sameHash(c.s!, empty) ? '' : toHex(c.s!)
        if ((await this.hasBlob(toHex(c.b!))) && (s === '' || (await this.hasBlob(s)))) {
          result.set(toHex(c.h), { b: toHex(c.b!), s })
        }
      }
    }
    return result
  }

  /**
   * Blobs this snapshot needs that are neither here nor derivable here: what the overlay must fetch.
   * Undefined when the manifest itself is unknown.
   */
  async missingBlobs(id: string): Promise<string[] | undefined> {
    const m = await this.getManifest(id)
    if (!m) return undefined
    const derivable = await this.derivable(m)
    const missing: string[] = []
    for (const hash of neededBlobs(m).keys()) {
      if (!derivable.has(hash) && !(await this.hasBlob(hash))) missing.push(hash)
    }
    return missing
  }

  /**
   * Record snapshot `m` (stored here) as complete when every blob it needs is in `present`: blobs the
   * caller saw here or wrote itself since, with nothing able to remove a blob in between (the runtime's
   * store queue keeps gc out of a collect). Saves re-reading the manifest and a stat per blob (a 16 MiB
   * state is hundreds of blobs: ~13 ms at load 20 on a candidate's path to `stored`). False: not
   * shown; ask `isComplete`.
   */
  markCompleteFrom(m: Manifest, present: ReadonlySet<string>): boolean {
    if (!this.infos.has(m.id)) return false
    for (const hash of neededBlobs(m).keys()) if (!present.has(hash)) return false
    this.complete.add(m.id)
    return true
  }

  /** Every blob present (presence only; restore and verify check content). */
  async isComplete(id: string): Promise<boolean> {
    if (this.complete.has(id) && this.infos.has(id)) return true
    const m = await this.getManifest(id)
    if (!m) return false
    for (const hash of neededBlobs(m).keys()) if (!(await this.hasBlob(hash))) return false
    this.complete.add(id)
    return true
  }

  async newestComplete(): Promise<SnapshotInfo | undefined> {
    for (const info of this.listSnapshots()) if (await this.isComplete(info.id)) return info
    return undefined
  }

  /**
   * Rebuild a derived base's chunk blobs from its source snapshot (old base + delta): the new base is
   * never sent or stored twice. Returns whether the snapshot is complete afterwards.
   */
  async materialize(id: string): Promise<boolean> {
    const m = await this.getManifest(id)
    if (!m) return false
    const derivable = await this.derivable(m)
    const window = new OrderedWindow<void>(Math.max(this.pool.window, 2), () => {})
    for (const part of m.parts) {
      for (const [index, c] of part.chunks.entries()) {
        const hash = toHex(c.h)
        const from = derivable.get(hash)
        if (!from || (await this.hasBlob(hash))) continue
        derivable.delete(hash)
        await window.push(
          (async () => {
            const blob = await this.readBlobUnverified(from.b)
            const base = from.s === '' ? new Uint8Array(0) : await this.readBlobUnverified(from.s)
            if (!blob || !base) return
            const entry = (await this.getSourceEntry(m, hash))!
            const bytes = await this.pool.decode({
              alg: m.hash_alg,
              kind: entry.k,
              hash: c.h,
              size_bytes: chunkSize(m, part, index),
              blob,
              base,
              base_hash: entry.s!,
            })
            await this.writeBlobTrusted(hash, bytes)
            recycle(bytes)
          })(),
        )
      }
    }
    await window.drain()
    return this.isComplete(id)
  }

  private sourceEntries = new Map<string, Map<string, Manifest['parts'][number]['chunks'][number]>>()

  private async getSourceEntry(m: Manifest, hash: string) {
    let entries = this.sourceEntries.get(m.id)
    if (!entries) {
      entries = new Map()
      const source = await this.getManifest(m.derived_from!)
      for (const part of source?.parts ?? []) for (const c of part.chunks) entries.set(toHex(c.h), c)
      this.sourceEntries.set(m.id, entries)
    }
    return entries.get(hash)
  }

  /** Base chunks of a stored base snapshot, for encoding the next delta against it. */
  async baseSource(baseId: string): Promise<BaseSource> {
    const m = await this.getManifest(baseId)
    if (!m) throw new Error(`base snapshot ${baseId} is not in the store`)
    const parts = new Map(m.parts.map((part) => [part.name, part]))
    return {
      label: baseId,
      chunk: async (name: string, index: number): Promise<BaseChunk | undefined> => {
        const entry = parts.get(name)?.chunks[index]
        if (!entry) return undefined
        // A span, not bytes: the codec thread reads the blob, and only when the new chunk's hash differs.
        const span = await this.blobSpan(toHex(entry.h))
        if (!span)
          throw new ChunkError(
            { snapshot_id: baseId, part: name, index },
            'missing',
            'base chunk blob absent',
          )
        return { bytes: span, hash: entry.h }
      },
    }
  }

  blobSource(): BlobSource {
    return { get: (hash) => this.readBlobUnverified(toHex(hash)), span: (hash) => this.blobSpan(toHex(hash)) }
  }

  /** A blob as a file span (read by a codec thread), or undefined if absent. */
  async blobSpan(hash: string): Promise<FileSpan | undefined> {
    const path = this.blobPath(hash)
    return stat(path).then(
      (s) => ({ path, offset: 0, length: s.size }),
      (error) => {
        if (isMissing(error)) return undefined
        throw error
      },
    )
  }

  /** Rebuild snapshot `id` into `writer`, verifying every chunk. Throws ChunkError naming the bad chunk. */
  async restore(id: string, writer: ImageWriter, on_progress?: Progress): Promise<Manifest> {
    const m = await this.getManifest(id)
    if (!m) throw new Error(`snapshot ${id} is not in the store`)
    await this.lock.withShared(() =>
      restoreImage(m, {
        pool: this.pool,
        blobs: this.blobSource(),
        writer,
        ...(on_progress ? { on_progress } : {}),
      }),
    )
    return m
  }

  /** Check every blob a snapshot needs: present, right size, right hash. Reports each bad chunk. */
  async verify(id: string): Promise<VerifyReport> {
    const m = await this.getManifest(id)
    if (!m) throw new Error(`snapshot ${id} is not in the store`)
    const checked = new Map<string, { problem: ChunkProblem; detail: string } | null>()
    const problems: BlobProblem[] = []
    const empty = toHex(emptyHash(m.hash_alg))
    const check = async (hash: string, size_bytes: number | undefined) => {
      if (checked.has(hash)) return checked.get(hash)!
      const bytes = await this.readBlobUnverified(hash)
      let result: { problem: ChunkProblem; detail: string } | null = null
      if (!bytes) result = { problem: 'missing', detail: `blob ${hash} absent` }
      else if (size_bytes !== undefined && bytes.byteLength < size_bytes) {
        result = {
          problem: 'truncated',
          detail: `blob ${hash} has ${bytes.byteLength} bytes, expected ${size_bytes}`,
        }
      } else if (toHex(await this.pool.hash(m.hash_alg, bytes)) !== hash) {
        result = { problem: 'corrupt', detail: `blob ${hash} does not match its hash` }
      }
      checked.set(hash, result)
      return result
    }
    for (const part of m.parts) {
      for (const [index, c] of part.chunks.entries()) {
        const blobs: [string, number | undefined][] =
          c.k === ChunkKind.RAW || c.k === ChunkKind.SAME
            ? [[toHex(c.h), chunkSize(m, part, index)]]
            : [
                [toHex(c.b!), c.n!],
                [toHex(c.s!), undefined],
              ]
        for (const [hash, size] of blobs) {
          if (hash === empty) continue
          const result = await check(hash, size)
          if (result) problems.push({ part: part.name, index, hash, ...result })
        }
      }
    }
    return {
      id,
      complete: !problems.some((p) => p.problem === 'missing'),
      ok: problems.length === 0,
      problems,
    }
  }

  /**
   * Keep the snapshots in `keep` (and the bases they need, and the source of a derived base not yet
   * materialized); delete every other manifest, then every blob no kept manifest needs, then temp files.
   */
  async gc(keep: Iterable<string>): Promise<GcStats> {
    return this.lock.withExclusive(async () => {
      const kept = new Set<string>()
      const add = async (id: string | null): Promise<void> => {
        if (!id || kept.has(id) || !this.infos.has(id)) return
        kept.add(id)
        const info = this.infos.get(id)!
        await add(info.base)
        if (info.derived_from && !(await this.isComplete(id))) await add(info.derived_from)
      }
      for (const id of keep) await add(id)
      const stats: GcStats = { manifests_removed: 0, blobs_removed: 0, bytes_freed: 0 }
      const referenced = new Set<string>()
      for (const id of kept)
        for (const hash of neededBlobs((await this.getManifest(id))!).keys()) referenced.add(hash)
      for (const id of [...this.infos.keys()]) {
        if (kept.has(id)) continue
        await rm(this.manifestPath(id), { force: true })
        this.infos.delete(id)
        this.complete.delete(id)
        this.sourceEntries.delete(id)
        stats.manifests_removed++
      }
      for (const file of await readdir(join(this.dir, 'manifests'))) {
        if (file.endsWith('.tmp')) await rm(join(this.dir, 'manifests', file), { force: true })
      }
      for (const prefix of await readdir(join(this.dir, 'blobs'))) {
        const dir = join(this.dir, 'blobs', prefix)
        for (const file of await readdir(dir)) {
          if (referenced.has(file)) continue
          const path = join(dir, file)
          const size = (await stat(path).catch(() => undefined))?.size ?? 0
          await rm(path, { force: true })
          if (!file.endsWith('.tmp')) {
            stats.blobs_removed++
            stats.bytes_freed += size
          }
        }
      }
      return stats
    })
  }

  /** Bytes of all blobs and manifests on disk. */
  async storedBytes(): Promise<number> {
    let total = 0
    for (const sub of ['manifests', 'blobs']) {
      const walk = async (dir: string): Promise<void> => {
        for (const entry of await readdir(dir, { withFileTypes: true })) {
          const path = join(dir, entry.name)
          if (entry.isDirectory()) await walk(path)
          else total += (await stat(path)).size
        }
      }
      await walk(join(this.dir, sub))
    }
    return total
  }
}
