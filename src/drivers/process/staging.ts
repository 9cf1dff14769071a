import { randomUUID } from 'node:crypto'
import { type BigIntStats, type Dirent, readdirSync, statSync } from 'node:fs'
import { link, mkdir, rm, unlink } from 'node:fs/promises'
import { basename, join } from 'node:path'
import type { FilePart } from '../../../snapshot/index.ts'
import { type CopyCapabilities, FileCopier, probeCapabilities } from './file-copy.ts'
import { guardedEndsKept } from './tail-guard.ts'

/**
 * Incremental copies of a state directory, one generation per capture. A file whose (inode, size,
 * mtime_ns) is the same as at the previous capture is a hard link to the previous copy, so every
 * generation is a complete tree but only changed files cost a copy. A file the manifest declares
 * append-only that kept its inode and grew costs only its growth: the new copy gets the bytes past the
 * old size from the state directory (in the pause) and the old bytes from the previous copy (a clone,
 * or filled in after the pause: they come from a copy nothing writes). Copies of a committed generation
 * are never modified (a changed file is unlinked, then made anew), so a generation being read is never
 * touched.
 */

interface FileKey {
  ino: bigint
  size: bigint
  mtime_ns: bigint
}

interface Entry extends FileKey {
  /**
   * Without fine-grained timestamps, mtime comes from a coarse kernel clock (one tick, 1 to 10 ms): a
   * write soon after the stat can leave size and mtime as they were ("racy git"). There, a file
   * modified within RACY_WINDOW_NS of the moment writes could resume is copied again next time,
   * whatever its key says.
   */
  racy: boolean
  /** The generation being built already holds this file (copied, or linked from the previous one). */
  in_next: boolean
  /**
   * That file is a new inode of this build (copied or cloned here), not a link into an earlier
   * generation: only such a file may still be written to (its growth appended), until the build commits.
   */
  own: boolean
  /** Its first bytes known equal to the previous generation's copy (all of a link, the old size of a growth). */
  same_bytes: bigint
}

/** Bytes [0, bytes) of a tail-copied file, still to come from the previous generation's copy. */
interface PrefixFill {
  name: string
  source: string
  bytes: number
}

export const RACY_WINDOW_NS = 20_000_000n
const COPY_CONCURRENCY = 4
const TAIL_CONCURRENCY = 4
const LINK_CONCURRENCY = 8

export function wallClockNs(): bigint {
  return BigInt(Date.now()) * 1_000_000n
}

function sameKey(a: FileKey, b: FileKey): boolean {
  return a.ino === b.ino && a.size === b.size && a.mtime_ns === b.mtime_ns
}

/** Regular files under `root` by relative path ('/'-separated). Synchronous: it runs inside the pause. */
export function scanTree(root: string): Map<string, FileKey> {
  const files = new Map<string, FileKey>()
  const walk = (dir: string, prefix: string) => {
    let entries: Dirent[]
    try {
      entries = readdirSync(dir, { withFileTypes: true })
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return
      throw error
    }
    for (const entry of entries) {
      const name = prefix + entry.name
      if (entry.isDirectory()) walk(join(dir, entry.name), `${name}/`)
      else if (entry.isFile()) {
        let st: BigIntStats
        try {
          st = statSync(join(dir, entry.name), { bigint: true })
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code === 'ENOENT') continue // removed while we looked
          throw error
        }
        files.set(name, { ino: st.ino, size: st.size, mtime_ns: st.mtimeNs })
      }
    }
  }
  walk(root, '')
  return files
}

async function eachLimit<T>(
  items: readonly T[],
  limit: number,
  work: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0
  const worker = async () => {
    while (next < items.length) await work(items[next++]!)
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker))
}

export interface PassStats {
  files: number
  /** Files copied whole. */
  copied_files: number
  /** Append-only files of which only the growth was copied. */
  tail_files: number
  /** Bytes read from the state directory: whole files and growths. */
  copied_bytes: number
  removed_files: number
  /** Of the pass, the stat of every file (the floor of a pause). */
  scan_ms: number
}

/** One generation under construction. */
export class StagingBuild {
  private readonly made_dirs = new Set<string>()
  private to_link: string[] = []
  private to_unlink: string[] = []
  private to_fill: PrefixFill[] = []
  /** Some pass of this build copied, grew or removed a file: it differs from the previous generation. */
  changed = false

  constructor(
    readonly state_dir: string,
    readonly dir: string,
    private readonly ref_dir: string | null,
    readonly catalog: Map<string, Entry>,
    private readonly copier: FileCopier,
    private readonly fine_timestamps: boolean,
    private readonly append_only: (name: string) => boolean,
  ) {}

  private async ensureParent(name: string): Promise<void> {
    const slash = name.lastIndexOf('/')
    if (slash === -1) return
    const parent = name.slice(0, slash)
    if (this.made_dirs.has(parent)) return
    await mkdir(join(this.dir, parent), { recursive: true })
    this.made_dirs.add(parent)
  }

  /**
   * Brings the generation up to date with the state directory: copies what changed since the catalog
   * was recorded (only the growth of append-only files), forgets what is gone. What needs only earlier
   * generations (old bytes of grown files, links to unchanged files, unlinks of removed ones) waits
   * for finish(), outside the pause.
   */
  async pass(): Promise<PassStats> {
    // A grown file's own copy is the reference for its next growth: it must be whole by then.
    if (this.to_fill.length > 0 || this.to_unlink.length > 0) throw new Error('pass before finish')
    const scan_started = performance.now()
    const scan = scanTree(this.state_dir)
    const scan_ms = Number((performance.now() - scan_started).toFixed(2))
    let removed_files = 0
    for (const [name, entry] of this.catalog) {
      if (scan.has(name)) continue
      if (entry.in_next) this.to_unlink.push(name)
      this.catalog.delete(name)
      removed_files++
    }
    const whole: [string, FileKey][] = []
    const grown: [string, FileKey, Entry][] = []
    const unchanged: string[] = []
    for (const [name, key] of scan) {
      const entry = this.catalog.get(name)
      // A racy key may hide a same-size rewrite; an append_only file is never rewritten, and any
      // append moves its size, so its key holds even within a coarse clock tick.
      if (entry && (!entry.racy || this.append_only(name)) && sameKey(entry, key)) {
        if (!entry.in_next) unchanged.push(name)
      } else if (entry && entry.ino === key.ino && key.size > entry.size && this.append_only(name)) {
        grown.push([name, key, entry])
      } else whole.push([name, key])
    }
    if (removed_files > 0 || whole.length > 0 || grown.length > 0) this.changed = true
    let copied_bytes = 0
    let tail_files = 0
    await eachLimit(grown, TAIL_CONCURRENCY, async ([name, key, entry]) => {
      const bytes = await this.copyGrowth(name, key, entry)
      if (bytes === null) whole.push([name, key])
      else if (bytes > 0) {
        copied_bytes += bytes
        tail_files++
      }
    })
    await eachLimit(whole, COPY_CONCURRENCY, async ([name, key]) => {
      const target = join(this.dir, name)
      // The old copy may be a hard link shared with the previous generation: replace, never overwrite.
      if (this.catalog.get(name)?.in_next) await unlink(target)
      await this.ensureParent(name)
      try {
        await this.copier.copy(join(this.state_dir, name), target, Number(key.size))
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error
        this.catalog.delete(name) // removed since the scan (only possible while the service runs)
        return
      }
      this.catalog.set(name, { ...key, racy: false, in_next: true, own: true, same_bytes: 0n })
      copied_bytes += Number(key.size)
    })
    this.to_link = unchanged
    return { files: scan.size, copied_files: whole.length, tail_files, copied_bytes, removed_files, scan_ms }
  }

  /**
   * Copies what an append-only file grew by; null when it must be copied whole instead (its ends differ
   * from the previous copy: rewritten, not appended to), -1 when it is gone.
   */
  private async copyGrowth(name: string, key: FileKey, entry: Entry): Promise<number | null> {
    const live = join(this.state_dir, name)
    const target = join(this.dir, name)
    // The old content: this build's own copy, else the previous generation's (which nothing writes).
    if (!entry.own && this.ref_dir === null) throw new Error(`${name}: no previous generation`)
    const reference = entry.own ? target : join(this.ref_dir!, name)
    const old_bytes = Number(entry.size)
    const new_bytes = Number(key.size)
    if (!(await guardedEndsKept(live, reference, old_bytes))) return null
    try {
      if (entry.own) await this.copier.copyRange(live, target, old_bytes, new_bytes, 'r+')
      else {
        if (entry.in_next) await unlink(target) // a link to the previous copy: never written through
        await this.ensureParent(name)
        if (await this.copier.clone(reference, target))
          await this.copier.copyRange(live, target, old_bytes, new_bytes, 'r+')
        else {
          await this.copier.copyRange(live, target, old_bytes, new_bytes, 'wx')
          this.to_fill.push({ name, source: reference, bytes: old_bytes })
        }
      }
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error
      // Removed since the scan (only while the service runs): drop whatever this build holds of it.
      await rm(target, { force: true })
      this.catalog.delete(name)
      return -1
    }
    const same_bytes = entry.own ? entry.same_bytes : entry.size
    this.catalog.set(name, { ...key, racy: false, in_next: true, own: true, same_bytes })
    return new_bytes - old_bytes
  }

  /**
   * The rest of the generation, from earlier generations only (so it may run while the service does):
   * old bytes of grown files, hard links to files that did not change, unlinks of removed files.
   */
  async finish(): Promise<void> {
    const fills = this.to_fill
    const names = this.to_link
    const gone = this.to_unlink
    this.to_fill = []
    this.to_link = []
    this.to_unlink = []
    await eachLimit(gone, LINK_CONCURRENCY, (name) => unlink(join(this.dir, name)))
    await eachLimit(fills, COPY_CONCURRENCY, (fill) =>
      this.copier.copyRange(fill.source, join(this.dir, fill.name), 0, fill.bytes, 'r+'),
    )
    if (names.length === 0) return
    const ref_dir = this.ref_dir
    if (ref_dir === null) throw new Error('unchanged files without a previous generation')
    await eachLimit(names, LINK_CONCURRENCY, async (name) => {
      await this.ensureParent(name)
      await link(join(ref_dir, name), join(this.dir, name))
      const entry = this.catalog.get(name)!
      entry.in_next = true
    })
  }

  /**
   * Flags files modified after `after_ns` (wall clock) as racy: copied again at the next pass. With
   * fine-grained timestamps (multigrain, Linux >= 6.13) a write after our stat always moves mtime.
   */
  markRacy(after_ns: bigint): void {
    for (const entry of this.catalog.values()) entry.racy = !this.fine_timestamps && entry.mtime_ns > after_ns
  }
}

export interface StagedCopy {
  dir: string
  /** This generation's token. */
  generation: string
  /** The previous generation's token when this one holds the same files (nothing copied, grown or removed). */
  same_as: string | undefined
  /** Names this capture for the snapshot engine, and what it shares with the previous one. */
  annotate(part: FilePart): FilePart
  release(): Promise<void>
}

/** The generations of one state directory's captures, under `root` (on the same file system). */
export class StagingArea {
  private seq = 0
  /** Generation tokens are unique to this area's lifetime (an earlier run's generations are removed). */
  private readonly nonce = randomUUID()
  private ref: { dir: string; generation: string; catalog: Map<string, Entry> } | null = null
  private readonly released = new Set<string>()
  private building = false
  private ready = false
  /** The state directory was replaced since the last commit: the next generation is never `same_as`. */
  private replaced = false
  private copier: FileCopier | undefined
  /** What the file system offers, found on first use. */
  capabilities: CopyCapabilities | undefined

  constructor(
    readonly root: string,
    readonly state_dir: string,
    /** Names (relative, '/'-separated) of files the service only appends to (manifest append_only). */
    private readonly append_only: (name: string) => boolean = () => false,
  ) {}

  /** The next capture copies every file (after a restore replaced the state directory). */
  forget(): void {
    if (this.ref) this.ref = { dir: this.ref.dir, generation: this.ref.generation, catalog: new Map() }
    this.replaced = true
  }

  /**
   * True when the state directory still holds generation `generation`'s files by the rules a pass trusts
   * (same paths, each with its key, none racy unless append-only): a capture would copy nothing. Call
   * while the service is frozen; it reads only directory entries and stats.
   */
  unchangedSince(generation: string): boolean {
    return this.changedBytesSince(generation) === 0
  }

  /**
   * What a pass would copy now, against generation `generation`, by the same rules `unchangedSince`
   * uses: 0 when it would copy nothing; else an estimate of the bytes (an append-only file that grew on
   * the same inode counts its growth, any other changed or new file its size); null when the state
   * cannot be compared (another generation is the reference, the directory was replaced, a build runs).
   * Call while the service is frozen; it reads only directory entries and stats.
   */
  changedBytesSince(generation: string): number | null {
    const ref = this.ref
    if (ref === null || ref.generation !== generation || this.replaced || this.building) return null
    const scan = scanTree(this.state_dir)
    let bytes = 0
    let changed = scan.size !== ref.catalog.size
    for (const [name, key] of scan) {
      const entry = ref.catalog.get(name)
      if (entry && sameKey(entry, key) && !(entry.racy && !this.append_only(name))) continue
      changed = true
      const grown =
        entry !== undefined && entry.ino === key.ino && key.size >= entry.size && this.append_only(name)
      bytes += Number(grown ? key.size - entry.size : key.size)
    }
    // A removed file or a racy file of unchanged size still makes the state differ: at least one byte.
    return changed ? Math.max(1, bytes) : 0
  }

  async begin(): Promise<StagingBuild> {
    if (this.building) throw new Error('a capture is already in progress')
    this.building = true
    try {
      if (!this.ready) {
        await rm(this.root, { recursive: true, force: true }) // generations of an earlier run
        await mkdir(this.root, { recursive: true })
        this.capabilities ??= await probeCapabilities(this.root)
        this.copier ??= new FileCopier(this.capabilities.reflink)
        this.ready = true
      }
      const dir = join(this.root, String(++this.seq))
      await mkdir(dir)
      const catalog = new Map<string, Entry>()
      for (const [name, entry] of this.ref?.catalog ?? [])
        catalog.set(name, { ...entry, in_next: false, own: false, same_bytes: entry.size })
      const { fine_timestamps } = this.capabilities!
      const build = new StagingBuild(
        this.state_dir,
        dir,
        this.ref?.dir ?? null,
        catalog,
        this.copier!,
        fine_timestamps,
        this.append_only,
      )
      build.changed = this.replaced
      return build
    } catch (error) {
      this.building = false
      throw error
    }
  }

  /** The build becomes the newest generation (the reference for the next one). */
  async commit(build: StagingBuild): Promise<StagedCopy> {
    if (!this.building) throw new Error('commit without a build')
    this.building = false
    this.replaced = false
    const old = this.ref
    const generation = `${this.nonce}/${basename(build.dir)}`
    this.ref = { dir: build.dir, generation, catalog: build.catalog }
    if (old && this.released.has(old.dir)) await this.remove(old.dir)
    const since = old?.generation
    return {
      dir: build.dir,
      generation,
      same_as: build.changed ? undefined : since,
      annotate: (part) => {
        const entry = build.catalog.get(part.name)
        const same_bytes = Number(entry?.same_bytes ?? 0n)
        return {
          ...part,
          generation,
          ...(since !== undefined && same_bytes > 0 ? { unchanged: { since, bytes: same_bytes } } : {}),
        }
      },
      release: async () => {
        this.released.add(build.dir)
        if (this.ref?.dir !== build.dir) await this.remove(build.dir)
      },
    }
  }

  async abort(build: StagingBuild): Promise<void> {
    this.building = false
    await rm(build.dir, { recursive: true, force: true })
  }

  private async remove(dir: string): Promise<void> {
    this.released.delete(dir)
    await rm(dir, { recursive: true, force: true })
  }

  async close(): Promise<void> {
    this.ref = null
    this.released.clear()
    if (this.ready) await rm(this.root, { recursive: true, force: true })
    this.ready = false
  }
}
