import type { FileHandle } from 'node:fs/promises'
import { MboxError, recordStarts, startsWithFrom } from './format.ts'

const CHUNK_BYTES = 4 * 1024 * 1024

export interface ScannedRecord {
  /** Byte offset of the record's `From ` line in the file. */
  offset: number
  /** The record: its `From ` line through the byte before the next record. */
  bytes: Buffer
}

/**
 * Streams the records of an mbox file in order, reading it in 4 MiB chunks (memory: one chunk plus
 * the largest message). Throws MboxError when the file does not start with a `From ` line.
 */
export async function* scanMbox(handle: FileHandle): AsyncGenerator<ScannedRecord> {
  let carry: Buffer = Buffer.alloc(0)
  let carry_offset = 0
  let position = 0
  for (;;) {
    const chunk = Buffer.allocUnsafe(CHUNK_BYTES)
    const { bytesRead } = await handle.read(chunk, 0, CHUNK_BYTES, position)
    if (bytesRead === 0) break
    position += bytesRead
    const data =
      carry.length === 0 ? chunk.subarray(0, bytesRead) : Buffer.concat([carry, chunk.subarray(0, bytesRead)])
    if (carry_offset === 0 && carry.length === 0 && !startsWithFrom(data)) {
      // A file shorter than `From ` is checked once the whole of it is here.
      if (data.length >= 5 || bytesRead < CHUNK_BYTES)
        throw new MboxError('not an mbox: no From line at the start')
    }
    // Look for separators from the carry's end - 1: a `\nFrom ` may straddle the chunk boundary.
    const starts = recordStarts(data, Math.max(0, carry.length - 6))
    if (carry.length === 0 && carry_offset === 0) {
      // The first window: recordStarts already counted offset 0.
    } else if (starts[0] !== 0) {
      starts.unshift(0)
    }
    for (let i = 0; i + 1 < starts.length; i++) {
      yield { offset: carry_offset + starts[i]!, bytes: data.subarray(starts[i]!, starts[i + 1]!) }
    }
    const last = starts[starts.length - 1] ?? 0
    carry_offset += last
    carry = data.subarray(last)
  }
  if (carry.length > 0) {
    if (carry_offset === 0 && !startsWithFrom(carry))
      throw new MboxError('not an mbox: no From line at the start')
    yield { offset: carry_offset, bytes: carry }
  }
}
