/**
 * The built-in mbox merge (the Postfix case). `archive` writes, for every mailbox of a spool directory,
 * the messages delivered since the fork time (less the skew margin); `merge` adds to each mailbox the
 * archived messages it does not hold yet (same Message-ID, else same content hash), in date order,
 * rewriting the mailbox atomically under the delivery lock. Running a merge twice adds nothing.
 */
import { randomBytes } from 'node:crypto'
import { type FileHandle, open, readdir, rename, stat, unlink } from 'node:fs/promises'
import { join } from 'node:path'
import type { Readable, Writable } from 'node:stream'
import { fsyncDir } from '../../lib/atomic-write.ts'
import { type ArchiveRecord, ArchiveWriter, readArchive } from '../archive.ts'
import { MboxError, recordInfo, startsWithFrom, terminated } from './format.ts'
import { type LockOptions, withMailboxLock } from './lock.ts'
import { scanMbox } from './scan.ts'

/**
 * Clocks of the two servers may differ by up to this much: the archive starts this long before the
 * fork time, and the duplicates that brings are dropped by the merge (helpers/HELPERS.md, "Clock skew").
 */
export const DEFAULT_SKEW_MS = 60_000
export const ARCHIVE_KIND = 'mbox'
const COPY_BYTES = 4 * 1024 * 1024

/** A mailbox file name: no dot files (temp files), no `.lock` files, nothing with a slash. */
export function isMailboxName(name: string): boolean {
  return /^[^./][^/]*$/.test(name) && !name.endsWith('.lock')
}

async function mailboxNames(spool_dir: string): Promise<string[]> {
  const entries = await readdir(spool_dir, { withFileTypes: true }).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return []
    throw error
  })
  return entries
    .filter((entry) => entry.isFile() && isMailboxName(entry.name))
    .map((entry) => entry.name)
    .sort()
}

export interface MboxArchiveOptions {
  spool_dir: string
  since_ms: number
  skew_ms?: number
  out: Writable | NodeJS.WritableStream
  lock?: LockOptions
}

export interface MboxArchiveStats {
  mailboxes: number
  messages: number
  bytes: number
}

/** Writes the archive of every mailbox's messages delivered at or after `since_ms - skew_ms`. */
export async function archiveMboxSpool(options: MboxArchiveOptions): Promise<MboxArchiveStats> {
  const from_ms = options.since_ms - (options.skew_ms ?? DEFAULT_SKEW_MS)
  const writer = new ArchiveWriter(options.out)
  const stats: MboxArchiveStats = { mailboxes: 0, messages: 0, bytes: 0 }
  await writer.begin()
  for (const name of await mailboxNames(options.spool_dir)) {
    const path = join(options.spool_dir, name)
    let counted = false
    await withMailboxLock(
      path,
      async () => {
        const handle = await open(path, 'r').catch(() => null) // removed while we listed: nothing to send
        if (!handle) return
        try {
          for await (const record of scanMbox(handle)) {
            const { time_ms } = recordInfo(record.bytes)
            // A message without a date cannot be placed in time: send it, the merge dedupes it.
            if (time_ms !== null && time_ms < from_ms) continue
            await writer.add({ path: name, mtime_ms: time_ms ?? 0, kind: ARCHIVE_KIND }, record.bytes)
            stats.messages++
            stats.bytes += record.bytes.length
            if (!counted) stats.mailboxes++
            counted = true
          }
        } catch (error) {
          if (error instanceof MboxError) throw new MboxError(`${path}: ${error.message}`)
          throw error
        } finally {
          await handle.close()
        }
      },
      options.lock,
    )
  }
  await writer.end()
  return stats
}

export interface MailboxMergeResult {
  added: number
  duplicates: number
  /** Bytes of the mailbox after the merge (unchanged when nothing was added). */
  size_bytes: number
}

interface Incoming {
  time_ms: number
  bytes: Buffer
  seq: number
}

async function copyRange(from: FileHandle, to: FileHandle, start: number, end: number, buffer: Buffer) {
  for (let at = start; at < end; ) {
    const { bytesRead } = await from.read(buffer, 0, Math.min(buffer.length, end - at), at)
    if (bytesRead === 0) throw new MboxError('mailbox shrank while locked')
    await writeAll(to, buffer.subarray(0, bytesRead))
    at += bytesRead
  }
}

async function writeAll(to: FileHandle, data: Buffer): Promise<void> {
  for (let at = 0; at < data.length; ) at += (await to.write(data, at, data.length - at)).bytesWritten
}

/**
 * Merges `records` (mbox records, each a `From ` line through its blank line) into the mailbox at
 * `path`. The caller holds the mailbox lock. New messages go before the first existing message
 * delivered later than them; existing messages keep their order. The new mailbox replaces the old one
 * by rename (same owner and mode) after an fsync: a crash leaves the old or the new, never a mix.
 */
export async function mergeIntoMailbox(
  path: string,
  records: readonly Buffer[],
  owner: { uid: number; gid: number; mode: number },
): Promise<MailboxMergeResult> {
  const existing_keys = new Set<string>()
  const existing: Array<{ offset: number; time_ms: number }> = []
  let size_bytes = 0
  let ends_blank = true
  const old = await open(path, 'r').catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return null
    throw error
  })
  try {
    if (old) {
      const info = await old.stat()
      owner = { uid: info.uid, gid: info.gid, mode: info.mode & 0o7777 }
      size_bytes = info.size
      let last: Buffer | null = null
      for await (const record of scanMbox(old)) {
        const { key, time_ms } = recordInfo(record.bytes)
        existing_keys.add(key)
        existing.push({ offset: record.offset, time_ms: time_ms ?? -Infinity })
        last = record.bytes
      }
      ends_blank = last === null || terminated(last) === last
    }
    const incoming: Incoming[] = []
    let duplicates = 0
    for (const bytes of records) {
      const { key, time_ms } = recordInfo(bytes)
      if (existing_keys.has(key)) {
        duplicates++
        continue
      }
      existing_keys.add(key) // the same message twice in the archive goes in once
      incoming.push({ time_ms: time_ms ?? Infinity, bytes: terminated(bytes), seq: incoming.length })
    }
    if (incoming.length === 0) return { added: 0, duplicates, size_bytes }
    incoming.sort((a, b) => a.time_ms - b.time_ms || a.seq - b.seq)

    const temp = join(path, '..', `.${randomBytes(6).toString('hex')}.merge.tmp`)
    const out = await open(temp, 'wx', owner.mode)
    try {
      const buffer = Buffer.allocUnsafe(COPY_BYTES)
      let copied = 0
      let next = 0 // next existing message
      for (const message of incoming) {
        while (next < existing.length && existing[next]!.time_ms <= message.time_ms) next++
        const at = next < existing.length ? existing[next]!.offset : size_bytes
        if (old && at > copied) await copyRange(old, out, copied, at, buffer)
        copied = at
        // A cut last message gets its blank line before anything follows it.
        if (at === size_bytes && !ends_blank) {
          const tail = Buffer.alloc(2)
          const { bytesRead } = await old!.read(tail, 0, 2, Math.max(0, size_bytes - 2))
          await writeAll(out, Buffer.from(tail[bytesRead - 1] === 10 ? '\n' : '\n\n'))
          ends_blank = true
        }
        await writeAll(out, message.bytes)
      }
      if (old && copied < size_bytes) await copyRange(old, out, copied, size_bytes, buffer)
      await out.chown(owner.uid, owner.gid).catch((error: NodeJS.ErrnoException) => {
        if (error.code !== 'EPERM') throw error // not root: the file stays ours, as the mailbox was
      })
      await out.chmod(owner.mode)
      await out.sync()
      const written = (await out.stat()).size
      await out.close()
      await rename(temp, path)
      await fsyncDir(join(path, '..'))
      return { added: incoming.length, duplicates, size_bytes: written }
    } catch (error) {
      await out.close().catch(() => {})
      await unlink(temp).catch(() => {})
      throw error
    }
  } finally {
    await old?.close()
  }
}

export interface MboxMergeOptions {
  spool_dir: string
  input: Readable | AsyncIterable<Buffer>
  lock?: LockOptions
  /** Owner of mailboxes the merge creates (default: the spool directory's owner, mode 0600). */
  owner?: { uid: number; gid: number; mode: number }
}

export interface MboxMergeStats {
  mailboxes: number
  added: number
  duplicates: number
}

/**
 * Reads an mbox archive and merges it, one mailbox at a time (the records of one mailbox are held in
 * memory: the messages delivered on the other side since the fork). A cut archive fails after the
 * mailboxes it held completely are merged; the retry adds the rest and nothing twice.
 */
export async function mergeMboxSpool(options: MboxMergeOptions): Promise<MboxMergeStats> {
  const spool = await stat(options.spool_dir)
  const owner = options.owner ?? { uid: spool.uid, gid: spool.gid, mode: 0o600 }
  const stats: MboxMergeStats = { mailboxes: 0, added: 0, duplicates: 0 }
  let current: string | null = null
  let records: Buffer[] = []
  const flush = async () => {
    if (current === null) return
    const path = join(options.spool_dir, current)
    const batch = records
    const result = await withMailboxLock(path, () => mergeIntoMailbox(path, batch, owner), options.lock)
    stats.mailboxes++
    stats.added += result.added
    stats.duplicates += result.duplicates
    records = []
  }
  for await (const record of readArchive(options.input) as AsyncIterable<ArchiveRecord>) {
    const { path, kind } = record.header
    if (kind !== undefined && kind !== ARCHIVE_KIND)
      throw new MboxError(`record of kind ${kind} in an mbox archive`)
    if (!isMailboxName(path)) throw new MboxError(`not a mailbox name: ${path}`)
    if (!startsWithFrom(record.body)) throw new MboxError(`record for ${path} is not an mbox message`)
    if (path !== current) {
      await flush()
      current = path
    }
    records.push(record.body)
  }
  await flush()
  return stats
}
