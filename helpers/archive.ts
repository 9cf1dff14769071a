/**
 * The framed archive format that `archive` writes and `merge` reads (helpers/HELPERS.md, "Archive
 * format"). Line-oriented headers so a shell helper can write it with printf and wc -c:
 *
 *   SUSTAIN-ARCHIVE 1\n
 *   {"path":"alice","mtime_ms":1700000000000,"size_bytes":5}\n   one JSON object per record
 *   hello\n                                                       exactly size_bytes bytes, then \n
 *   ...
 *   {"end":true,"records":1}\n                                    the end mark: a cut archive is an error
 *
 * Extra header fields (kind, mode, flags) are carried through untouched.
 */
import type { Readable, Writable } from 'node:stream'

export const ARCHIVE_MAGIC = 'SUSTAIN-ARCHIVE 1'
/** A header line longer than this is not a header (a corrupt or foreign stream). */
const MAX_HEADER_BYTES = 64 * 1024

export interface ArchiveRecordHeader {
  /** Relative path of the item (a mailbox name, a file path); never absolute, never `..`. */
  path: string
  /** The item's time: a message's delivery time, a file's mtime (epoch ms). */
  mtime_ms: number
  size_bytes: number
  kind?: string
  [field: string]: unknown
}

export interface ArchiveRecord {
  header: ArchiveRecordHeader
  body: Buffer
}

export class ArchiveError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'ArchiveError'
  }
}

/** True for a relative path without `.`/`..` segments or empty segments. */
export function isSafeRelativePath(path: string): boolean {
  if (path === '' || path.startsWith('/') || path.includes('\0')) return false
  return path.split('/').every((part) => part !== '' && part !== '.' && part !== '..')
}

/** Writes an archive to a stream, honouring backpressure. */
export class ArchiveWriter {
  private records = 0
  private ended = false

  constructor(private readonly out: Writable | NodeJS.WritableStream) {}

  private async put(chunk: Buffer | string): Promise<void> {
    if (!this.out.write(chunk)) {
      await new Promise<void>((resolve, reject) => {
        const done = (error?: Error) => {
          this.out.off('drain', done)
          this.out.off('error', done)
          error ? reject(error) : resolve()
        }
        this.out.once('drain', done)
        this.out.once('error', done)
      })
    }
  }

  async begin(): Promise<void> {
    await this.put(`${ARCHIVE_MAGIC}\n`)
  }

  async add(
    header: { path: string; mtime_ms: number; kind?: string; [field: string]: unknown },
    body: Buffer,
  ): Promise<void> {
    if (this.ended) throw new ArchiveError('archive already ended')
    if (!isSafeRelativePath(header.path)) throw new ArchiveError(`unsafe record path: ${header.path}`)
    const line = JSON.stringify({ ...header, size_bytes: body.length })
    await this.put(`${line}\n`)
    if (body.length > 0) await this.put(body)
    await this.put('\n')
    this.records++
  }

  /** Writes the end mark. The caller ends the stream itself (stdout must not be closed by a helper). */
  async end(): Promise<number> {
    this.ended = true
    await this.put(`${JSON.stringify({ end: true, records: this.records })}\n`)
    return this.records
  }
}

/** A queue of buffers that reads lines and exact byte counts without re-copying what it holds. */
class ByteQueue {
  private chunks: Buffer[] = []
  /** Index of the first chunk still in use, and the offset into it. */
  private first = 0
  private head = 0
  length = 0

  push(chunk: Buffer): void {
    if (this.first > 1024 && this.first * 2 > this.chunks.length) {
      this.chunks = this.chunks.slice(this.first)
      this.first = 0
    }
    this.chunks.push(chunk)
    this.length += chunk.length
  }

  /** Index of the first \n from the front, or -1 (looks at no more than `limit` bytes). */
  indexOfNewline(limit: number): number {
    let base = 0
    for (let i = this.first; i < this.chunks.length && base < limit; i++) {
      const chunk = this.chunks[i]!
      const start = i === this.first ? this.head : 0
      const at = chunk.indexOf(10, start)
      if (at !== -1) return base + at - start
      base += chunk.length - start
    }
    return -1
  }

  private advance(count: number): void {
    this.head += count
    this.length -= count
    if (this.head === this.chunks[this.first]!.length) {
      this.first++
      this.head = 0
    }
  }

  take(n: number): Buffer {
    if (n > this.length) throw new Error('ByteQueue.take beyond its length')
    const current = this.chunks[this.first]
    if (n === 0 || !current) return Buffer.alloc(0)
    if (current.length - this.head >= n) {
      const out = current.subarray(this.head, this.head + n)
      this.advance(n)
      return out
    }
    const out = Buffer.allocUnsafe(n)
    for (let filled = 0; filled < n; ) {
      const chunk = this.chunks[this.first]!
      const count = Math.min(chunk.length - this.head, n - filled)
      chunk.copy(out, filled, this.head, this.head + count)
      filled += count
      this.advance(count)
    }
    return out
  }
}

function parseHeader(line: string, index: number): ArchiveRecordHeader | { end: true; records: number } {
  let value: unknown
  try {
    value = JSON.parse(line)
  } catch {
    throw new ArchiveError(`record ${index}: header is not JSON: ${line.slice(0, 80)}`)
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ArchiveError(`record ${index}: header is not an object`)
  }
  const header = value as Record<string, unknown>
  if (header['end'] === true) {
    if (header['records'] !== index) {
      throw new ArchiveError(`end mark says ${String(header['records'])} records, read ${index}`)
    }
    return { end: true, records: index }
  }
  const { path, mtime_ms, size_bytes } = header
  if (typeof path !== 'string' || !isSafeRelativePath(path)) {
    throw new ArchiveError(`record ${index}: unsafe or missing path ${JSON.stringify(path)}`)
  }
  if (typeof mtime_ms !== 'number' || !Number.isFinite(mtime_ms)) {
    throw new ArchiveError(`record ${index} (${path}): mtime_ms must be a number`)
  }
  if (typeof size_bytes !== 'number' || !Number.isSafeInteger(size_bytes) || size_bytes < 0) {
    throw new ArchiveError(`record ${index} (${path}): size_bytes must be a non-negative integer`)
  }
  return header as ArchiveRecordHeader
}

/**
 * Reads an archive record by record as it streams in; each record's body is held in memory (one
 * message or one file at a time). Throws ArchiveError on a malformed or cut archive; the records
 * yielded before the error were complete.
 */
export async function* readArchive(input: Readable | AsyncIterable<Buffer>): AsyncGenerator<ArchiveRecord> {
  const queue = new ByteQueue()
  const source = input[Symbol.asyncIterator]() as AsyncIterator<Buffer | string>
  let eof = false
  const fill = async (): Promise<boolean> => {
    if (eof) return false
    const next = await source.next()
    if (next.done) {
      eof = true
      return false
    }
    queue.push(typeof next.value === 'string' ? Buffer.from(next.value) : next.value)
    return true
  }
  const line = async (what: string): Promise<string> => {
    for (;;) {
      const at = queue.indexOfNewline(MAX_HEADER_BYTES + 1)
      if (at !== -1) {
        const text = queue.take(at).toString('utf8')
        queue.take(1)
        return text
      }
      if (queue.length > MAX_HEADER_BYTES) throw new ArchiveError(`${what}: line longer than 64 KiB`)
      if (!(await fill())) throw new ArchiveError(`archive cut short: ${what} missing`)
    }
  }
  const exact = async (n: number, what: string): Promise<Buffer> => {
    while (queue.length < n) {
      if (!(await fill())) throw new ArchiveError(`archive cut short inside ${what}`)
    }
    return queue.take(n)
  }

  const magic = await line('archive header')
  if (magic !== ARCHIVE_MAGIC) {
    throw new ArchiveError(`not a Sustain archive (first line ${JSON.stringify(magic.slice(0, 40))})`)
  }
  for (let index = 0; ; index++) {
    const header = parseHeader(await line(`record ${index} header`), index)
    if ('end' in header && header.end === true) break
    const record = header as ArchiveRecordHeader
    const body = await exact(record.size_bytes, `record ${index} (${record.path})`)
    const newline = await exact(1, `record ${index} (${record.path})`)
    if (newline[0] !== 10) throw new ArchiveError(`record ${index} (${record.path}): no newline after body`)
    yield { header: record, body }
  }
  while (queue.length === 0 && (await fill())) {}
  if (queue.length > 0) throw new ArchiveError('data after the end mark')
}
