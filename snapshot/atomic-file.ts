import { randomBytes } from 'node:crypto'
import { type FileHandle, mkdir, open, rename, rm, stat } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
import { fsyncDir } from '../lib/atomic-write.ts'

/**
 * A file written as a stream that appears under its final name only when complete: temp file in the
 * same directory, fsync, rename, fsync the directory (the streaming form of writeFileAtomic).
 */
export class AtomicFile implements PartFile {
  private constructor(
    readonly path: string,
    readonly temp: string,
    private readonly handle: FileHandle,
    private readonly durable: boolean,
  ) {}

  /**
   * `durable: false` skips the fsyncs: still atomic for readers and against a killed process, not
   * against a power cut (for outputs that can be rebuilt, e.g. a benchmark's or a scratch restore).
   */
  static async create(path: string, options: { durable?: boolean } = {}): Promise<AtomicFile> {
    const temp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`)
    return new AtomicFile(path, temp, await open(temp, 'wx', 0o644), options.durable ?? true)
  }

  position = 0

  /** Other threads may write into the temp file by position until commit or abort. */
  get write_path(): string {
    return this.temp
  }

  async write(bytes: Uint8Array): Promise<void> {
    await this.writeAt(bytes, this.position)
  }

  /** Write at `at`, independent of `write`'s position (so several may be in flight). */
  async writeAt(bytes: Uint8Array, at: number): Promise<void> {
    // Taken before the write: an append issued meanwhile goes after these bytes.
    this.position = Math.max(this.position, at + bytes.byteLength)
    for (let written = 0; written < bytes.byteLength; ) {
      const { bytesWritten } = await this.handle.write(
        bytes,
        written,
        bytes.byteLength - written,
        at + written,
      )
      written += bytesWritten
    }
  }

  async commit(): Promise<void> {
    try {
      if (this.durable) await this.handle.sync()
    } finally {
      await this.handle.close()
    }
    await rename(this.temp, this.path)
    if (this.durable) await fsyncDir(dirname(this.path))
  }

  async abort(): Promise<void> {
    await this.handle.close().catch(() => {})
    await rm(this.temp, { force: true })
  }
}

/** One output part being written. */
export interface PartFile {
  /** Append (after the furthest byte written so far). */
  write(bytes: Uint8Array): Promise<void>
  /** Positioned write; several may be in flight at once. */
  writeAt(bytes: Uint8Array, at: number): Promise<void>
  /** When set: a file other threads may open and write into by position (until commit or abort). */
  readonly write_path?: string
  commit(): Promise<void>
  abort(): Promise<void>
}

/** Where restore writes parts: one file, or a directory with one file per part. */
export interface ImageWriter {
  openPart(name: string): Promise<PartFile>
  commit(): Promise<void>
  abort(): Promise<void>
}

/** Output for a one-part image: the part becomes `path`. */
export function fileImageWriter(path: string, options: { durable?: boolean } = {}): ImageWriter {
  let file: AtomicFile | undefined
  return {
    async openPart() {
      if (file) throw new Error(`${path}: a file output holds exactly one part`)
      file = await AtomicFile.create(path, options)
      return file
    },
    async commit() {
      // The part committed itself (renamed into place); an image without parts is an empty file.
      if (!file) await (await AtomicFile.create(path, options)).commit()
    },
    async abort() {
      await file?.abort()
    },
  }
}

/**
 * Output for a directory: parts go into a temp directory beside `dir`, which then replaces `dir`
 * (an old `dir` is moved aside first and removed after, so a reader never sees a half-restored tree).
 */
/**
 * Puts the complete directory `prepared` in place of `dir` (which may be absent): two renames on one
 * filesystem, then the parent's fsync; the old tree is removed after. `prepared` must be a sibling of
 * `dir` or at least on its filesystem.
 */
export async function swapDirectory(
  prepared: string,
  dir: string,
  options: { durable?: boolean } = {},
): Promise<void> {
  const exists = await stat(dir).then(
    () => true,
    () => false,
  )
  const old = join(dirname(dir), `.${basename(dir)}.${randomBytes(6).toString('hex')}.old`)
  if (exists) await rename(dir, old)
  await rename(prepared, dir)
  if (options.durable ?? true) await fsyncDir(dirname(dir))
  if (exists) await rm(old, { recursive: true, force: true })
}

export function directoryImageWriter(dir: string, options: { durable?: boolean } = {}): ImageWriter {
  const temp = join(dirname(dir), `.${basename(dir)}.${randomBytes(6).toString('hex')}.tmp`)
  const files: AtomicFile[] = []
  return {
    async openPart(name) {
      const path = join(temp, ...name.split('/'))
      await mkdir(dirname(path), { recursive: true })
      const file = await AtomicFile.create(path, options)
      files.push(file)
      return file
    },
    async commit() {
      await mkdir(temp, { recursive: true })
      await swapDirectory(temp, dir, options)
    },
    async abort() {
      for (const file of files) await file.abort()
      await rm(temp, { recursive: true, force: true })
    },
  }
}

/** Restore into nothing: verification only. */
export function nullImageWriter(): ImageWriter {
  return {
    async openPart() {
      const none = async () => {}
      return { write: none, writeAt: none, commit: none, abort: none }
    },
    async commit() {},
    async abort() {},
  }
}
