import { type BigIntStats, type Dirent, readdirSync, statSync } from 'node:fs'
import { link, mkdir, rm, unlink } from 'node:fs/promises'
import { join } from 'node:path'
import { type CopyCapabilities, FileCopier, probeCapabilities } from './file-copy.ts'

/**
 * Incremental copies of a state directory, one generation per capture. A file whose (inode, size,
 * mtime_ns) is the same as at the previous capture is a hard link to the previous copy, so every
 * generation is a complete tree but only changed files cost a copy. Copies are never modified in place
 * (a changed file is unlinked, then copied anew), so a generation still being read is never touched.
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
}

export const RACY_WINDOW_NS = 20_000_000n
const COPY_CONCURRENCY = 4
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
  copied_files: number
  copied_bytes: number
  removed_files: number
}

/** One generation under construction. */
export class StagingBuild {
  private readonly made_dirs = new Set<string>()
  private to_link: string[] = []

  constructor(
    readonly state_dir: string,
    readonly dir: string,
    private readonly ref_dir: string | null,
    readonly catalog: Map<string, Entry>,
    private readonly copier: FileCopier,
    private readonly fine_timestamps: boolean,
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
   * was recorded, drops what is gone. Unchanged files still only in the previous generation are linked
   * later (linkUnchanged), outside the pause.
   */
  async pass(): Promise<PassStats> {
    const scan = scanTree(this.state_dir)
    let removed_files = 0
    for (const [name, entry] of this.catalog) {
      if (scan.has(name)) continue
      if (entry.in_next) await unlink(join(this.dir, name))
      this.catalog.delete(name)
      removed_files++
    }
    const changed: [string, FileKey][] = []
    const unchanged: string[] = []
    for (const [name, key] of scan) {
      const entry = this.catalog.get(name)
      if (entry && !entry.racy && sameKey(entry, key)) {
        if (!entry.in_next) unchanged.push(name)
      } else changed.push([name, key])
    }
    let copied_bytes = 0
    await eachLimit(changed, COPY_CONCURRENCY, async ([name, key]) => {
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
      this.catalog.set(name, { ...key, racy: false, in_next: true })
      copied_bytes += Number(key.size)
    })
    this.to_link = unchanged
    return { files: scan.size, copied_files: changed.length, copied_bytes, removed_files }
  }

  /** Hard-links the files that did not change from the previous generation. */
  async linkUnchanged(): Promise<void> {
    const names = this.to_link
    this.to_link = []
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
  release(): Promise<void>
}

/** The generations of one state directory's captures, under `root` (on the same file system). */
export class StagingArea {
  private seq = 0
  private ref: { dir: string; catalog: Map<string, Entry> } | null = null
  private readonly released = new Set<string>()
  private building = false
  private ready = false
  private copier: FileCopier | undefined
  /** What the file system offers, found on first use. */
  capabilities: CopyCapabilities | undefined

  constructor(
    readonly root: string,
    readonly state_dir: string,
  ) {}

  /** The next capture copies every file (after a restore replaced the state directory). */
  forget(): void {
    if (this.ref) this.ref = { dir: this.ref.dir, catalog: new Map() }
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
      for (const [name, entry] of this.ref?.catalog ?? []) catalog.set(name, { ...entry, in_next: false })
      const { fine_timestamps } = this.capabilities!
      return new StagingBuild(
        this.state_dir,
        dir,
        this.ref?.dir ?? null,
        catalog,
        this.copier!,
        fine_timestamps,
      )
    } catch (error) {
      this.building = false
      throw error
    }
  }

  /** The build becomes the newest generation (the reference for the next one). */
  async commit(build: StagingBuild): Promise<StagedCopy> {
    if (!this.building) throw new Error('commit without a build')
    this.building = false
    const old = this.ref
    this.ref = { dir: build.dir, catalog: build.catalog }
    if (old && this.released.has(old.dir)) await this.remove(old.dir)
    return {
      dir: build.dir,
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
