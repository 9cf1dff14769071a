/**
 * The built-in generic merge for a directory of files: the union of both sides' files, and for a
 * file both sides changed since the fork, the last writer (by mtime) wins while the other version is
 * kept next to it as `<path>.sustain-conflict-<side>-<mtime_ms>` (<side>: the peer's name for the
 * other server's version, `local` for this one's). A file only the other side changed since the fork
 * replaces this side's. Deletions are not carried. Running a merge twice changes nothing more.
 */
import { mkdir, readdir, readFile, stat, utimes } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import type { Readable, Writable } from 'node:stream'
import { writeFileAtomic } from '../lib/atomic-write.ts'
import { ArchiveError, ArchiveWriter, readArchive } from './archive.ts'
import { DEFAULT_SKEW_MS } from './mbox/spool.ts'

export const FILE_KIND = 'file'
const CONFLICT_MARK = '.sustain-conflict-'

/** Regular files under `root`, relative paths, sorted; our own temp files (dot files .*.tmp) skipped. */
export async function listFiles(root: string, prefix = ''): Promise<string[]> {
  const entries = await readdir(join(root, prefix), { withFileTypes: true }).catch(() => [])
  const found: string[] = []
  for (const entry of entries.sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const path = prefix ? `${prefix}/${entry.name}` : entry.name
    if (entry.isDirectory()) found.push(...(await listFiles(root, path)))
    else if (entry.isFile() && !(entry.name.startsWith('.') && entry.name.endsWith('.tmp'))) found.push(path)
  }
  return found
}

export interface FilesArchiveOptions {
  root: string
  since_ms: number
  skew_ms?: number
  out: Writable | NodeJS.WritableStream
}

export async function archiveFiles(options: FilesArchiveOptions): Promise<{ files: number; bytes: number }> {
  const from_ms = options.since_ms - (options.skew_ms ?? DEFAULT_SKEW_MS)
  const writer = new ArchiveWriter(options.out)
  const stats = { files: 0, bytes: 0 }
  await writer.begin()
  for (const path of await listFiles(options.root)) {
    const info = await stat(join(options.root, path)).catch(() => null)
    if (!info || info.mtimeMs < from_ms) continue
    const body = await readFile(join(options.root, path))
    await writer.add({ path, mtime_ms: info.mtimeMs, kind: FILE_KIND, mode: info.mode & 0o7777 }, body)
    stats.files++
    stats.bytes += body.length
  }
  await writer.end()
  return stats
}

export interface FilesMergeOptions {
  root: string
  input: Readable | AsyncIterable<Buffer>
  since_ms: number
  skew_ms?: number
  /** Names the other side's versions kept on conflict (its node name); letters, digits, . _ - only. */
  peer_label: string
}

export interface FilesMergeStats {
  added: number
  replaced: number
  conflicts: number
  unchanged: number
}

async function writeWithTime(path: string, body: Buffer, mtime_ms: number, mode: number): Promise<void> {
  await mkdir(dirname(path), { recursive: true })
  await writeFileAtomic(path, body, { mode })
  await utimes(path, mtime_ms / 1000, mtime_ms / 1000)
}

export async function mergeFiles(options: FilesMergeOptions): Promise<FilesMergeStats> {
  const changed_from_ms = options.since_ms - (options.skew_ms ?? DEFAULT_SKEW_MS)
  const label = options.peer_label.replace(/[^A-Za-z0-9._-]/g, '_') || 'peer'
  const stats: FilesMergeStats = { added: 0, replaced: 0, conflicts: 0, unchanged: 0 }
  for await (const { header, body } of readArchive(options.input)) {
    if (header.kind !== undefined && header.kind !== FILE_KIND) {
      throw new ArchiveError(`record of kind ${header.kind} in a files archive`)
    }
    const mode = typeof header['mode'] === 'number' ? (header['mode'] as number) & 0o777 : 0o644
    const target = join(options.root, header.path)
    const mine = await stat(target).catch(() => null)
    if (mine && !mine.isFile()) throw new ArchiveError(`${header.path}: not a regular file here`)
    if (!mine) {
      await writeWithTime(target, body, header.mtime_ms, mode)
      stats.added++
      continue
    }
    const current = await readFile(target)
    if (current.equals(body)) {
      stats.unchanged++
      continue
    }
    // Changed here since the fork too (clock skew counts as changed): keep both, newest at the path.
    if (mine.mtimeMs >= changed_from_ms) {
      stats.conflicts++
      if (header.mtime_ms > mine.mtimeMs) {
        await writeWithTime(
          `${target}${CONFLICT_MARK}local-${Math.floor(mine.mtimeMs)}`,
          current,
          mine.mtimeMs,
          mine.mode & 0o777,
        )
        await writeWithTime(target, body, header.mtime_ms, mode)
      } else {
        await writeWithTime(
          `${target}${CONFLICT_MARK}${label}-${Math.floor(header.mtime_ms)}`,
          body,
          header.mtime_ms,
          mode,
        )
      }
      continue
    }
    await writeWithTime(target, body, header.mtime_ms, mode)
    stats.replaced++
  }
  return stats
}
