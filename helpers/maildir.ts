/**
 * The built-in Maildir merge. Message files have unique names `<unique>[:2,<flags>]` in `cur/` or
 * `new/` of a folder (the root, or a Maildir++ `.Name` folder). The archive carries every message
 * delivered since the fork (less the skew margin) with its bytes, and the names of all the others
 * (no bytes) so flag changes made on the other side reach messages both sides hold. The merge adds
 * the messages it lacks (tmp/ then rename, the Maildir delivery protocol) and gives a message held on
 * both sides the union of the flags. Deletions are not carried: a message deleted on this side is not
 * brought back by a flags record.
 */
import { randomBytes } from 'node:crypto'
import { mkdir, open, readdir, rename, stat, unlink, utimes } from 'node:fs/promises'
import { join } from 'node:path'
import type { Readable, Writable } from 'node:stream'
import { fsyncDir } from '../lib/atomic-write.ts'
import { ArchiveError, ArchiveWriter, readArchive } from './archive.ts'
import { DEFAULT_SKEW_MS } from './mbox/spool.ts'

export const MAILDIR_KIND = 'maildir'
export const MAILDIR_FLAGS_KIND = 'maildir-flags'
const SUBDIRS = ['cur', 'new'] as const
type Subdir = (typeof SUBDIRS)[number]

export interface MaildirName {
  unique: string
  /** Flag letters, sorted, without duplicates ('' when none). */
  flags: string
}

export function parseMaildirName(name: string): MaildirName {
  const at = name.indexOf(':2,')
  if (at === -1) return { unique: name.split(':')[0]!, flags: '' }
  return { unique: name.slice(0, at), flags: normaliseFlags(name.slice(at + 3)) }
}

export function normaliseFlags(flags: string): string {
  return [...new Set(flags.replace(/[^A-Za-z]/g, ''))].sort().join('')
}

function fileName(unique: string, subdir: Subdir, flags: string): string {
  return subdir === 'new' && flags === '' ? unique : `${unique}:2,${flags}`
}

/** The folders of a maildir: '' (the root) and every `.Name` folder with a cur/ directory. */
async function folders(root: string): Promise<string[]> {
  const entries = await readdir(root, { withFileTypes: true }).catch(() => [])
  const found = ['']
  for (const entry of entries) {
    if (!entry.isDirectory() || !entry.name.startsWith('.') || entry.name === '.' || entry.name === '..')
      continue
    if (
      await stat(join(root, entry.name, 'cur')).then(
        (s) => s.isDirectory(),
        () => false,
      )
    )
      found.push(entry.name)
  }
  return found.sort()
}

async function messageFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => [])
  return entries
    .filter((e) => e.isFile() && !e.name.startsWith('.'))
    .map((e) => e.name)
    .sort()
}

export interface MaildirArchiveOptions {
  root: string
  since_ms: number
  skew_ms?: number
  out: Writable | NodeJS.WritableStream
}

export async function archiveMaildir(
  options: MaildirArchiveOptions,
): Promise<{ messages: number; names: number }> {
  const from_ms = options.since_ms - (options.skew_ms ?? DEFAULT_SKEW_MS)
  const writer = new ArchiveWriter(options.out)
  const stats = { messages: 0, names: 0 }
  await writer.begin()
  for (const folder of await folders(options.root)) {
    for (const subdir of SUBDIRS) {
      const dir = join(options.root, folder, subdir)
      for (const name of await messageFiles(dir)) {
        const path = folder ? `${folder}/${subdir}/${name}` : `${subdir}/${name}`
        const handle = await open(join(dir, name), 'r').catch(() => null) // moved meanwhile: it is elsewhere
        if (!handle) continue
        try {
          const info = await handle.stat()
          if (info.mtimeMs >= from_ms) {
            await writer.add(
              { path, mtime_ms: Math.floor(info.mtimeMs), kind: MAILDIR_KIND },
              await handle.readFile(),
            )
            stats.messages++
          } else {
            await writer.add(
              { path, mtime_ms: Math.floor(info.mtimeMs), kind: MAILDIR_FLAGS_KIND },
              Buffer.alloc(0),
            )
            stats.names++
          }
        } finally {
          await handle.close()
        }
      }
    }
  }
  await writer.end()
  return stats
}

interface Held {
  subdir: Subdir
  name: string
}

/** unique name -> where the message is, per folder, read on first use. */
class FolderIndex {
  private readonly folders = new Map<string, Map<string, Held>>()
  constructor(private readonly root: string) {}

  async get(folder: string): Promise<Map<string, Held>> {
    let index = this.folders.get(folder)
    if (!index) {
      index = new Map()
      for (const subdir of SUBDIRS) {
        for (const name of await messageFiles(join(this.root, folder, subdir))) {
          index.set(parseMaildirName(name).unique, { subdir, name })
        }
      }
      this.folders.set(folder, index)
    }
    return index
  }
}

function splitPath(path: string): { folder: string; subdir: Subdir; name: string } {
  const parts = path.split('/')
  const [folder, subdir, name] = parts.length === 3 ? parts : ['', ...parts]
  if (parts.length < 2 || parts.length > 3 || (parts.length === 3 && !folder!.startsWith('.'))) {
    throw new ArchiveError(`not a maildir message path: ${path}`)
  }
  if (subdir !== 'cur' && subdir !== 'new') throw new ArchiveError(`not in cur/ or new/: ${path}`)
  return { folder: folder!, subdir, name: name! }
}

export interface MaildirMergeStats {
  added: number
  flags_updated: number
  present: number
}

export async function mergeMaildir(options: {
  root: string
  input: Readable | AsyncIterable<Buffer>
}): Promise<MaildirMergeStats> {
  const index = new FolderIndex(options.root)
  const stats: MaildirMergeStats = { added: 0, flags_updated: 0, present: 0 }
  for await (const { header, body } of readArchive(options.input)) {
    if (header.kind !== MAILDIR_KIND && header.kind !== MAILDIR_FLAGS_KIND) {
      throw new ArchiveError(`record of kind ${String(header.kind)} in a maildir archive`)
    }
    const { folder, subdir, name } = splitPath(header.path)
    const { unique, flags } = parseMaildirName(name)
    if (unique === '' || unique.startsWith('.')) throw new ArchiveError(`bad maildir name: ${name}`)
    const held = await index.get(folder)
    const mine = held.get(unique)
    const folder_dir = join(options.root, folder)
    if (mine) {
      const union = normaliseFlags(parseMaildirName(mine.name).flags + flags)
      const target_subdir: Subdir = mine.subdir === 'cur' || subdir === 'cur' ? 'cur' : 'new'
      const target = fileName(unique, target_subdir, union)
      if (target_subdir === mine.subdir && target === mine.name) {
        stats.present++
        continue
      }
      await rename(join(folder_dir, mine.subdir, mine.name), join(folder_dir, target_subdir, target))
      await fsyncDir(join(folder_dir, target_subdir))
      held.set(unique, { subdir: target_subdir, name: target })
      stats.flags_updated++
      continue
    }
    if (header.kind === MAILDIR_FLAGS_KIND) continue // not here: deleted on this side, or never delivered here
    for (const sub of ['tmp', 'cur', 'new']) await mkdir(join(folder_dir, sub), { recursive: true })
    const temp = join(folder_dir, 'tmp', `${unique}.${randomBytes(4).toString('hex')}`)
    const handle = await open(temp, 'wx', 0o600)
    try {
      await handle.writeFile(body)
      await handle.sync()
    } finally {
      await handle.close()
    }
    const seconds = header.mtime_ms / 1000
    await utimes(temp, seconds, seconds)
    const target = fileName(unique, subdir, flags)
    await rename(temp, join(folder_dir, subdir, target)).catch(async (error) => {
      await unlink(temp).catch(() => {})
      throw error
    })
    await fsyncDir(join(folder_dir, subdir))
    held.set(unique, { subdir, name: target })
    stats.added++
  }
  return stats
}
