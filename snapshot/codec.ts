import { closeSync, openSync, readSync, writeSync } from 'node:fs'
import { init, WASI_ERRNO, xd3_decode_memory, xd3_encode_memory, xd3_smatch_cfg } from 'xdelta3-wasm'
import { CodecError } from './errors.ts'
import { emptyHash, type HashAlg, hashBytes, sameHash, toHex } from './hash.ts'
import { MAX_CHUNK_BYTES, PAGE_BYTES } from './limits.ts'

/** How a chunk is stored in a snapshot. Deltas are always against the BASE chunk. */
export const ChunkKind = {
  /** Content equals a base chunk: the base's blob (named by content hash) is reused, nothing new. */
  SAME: 0,
  /** Blob = the chunk's bytes, named by the content hash. */
  RAW: 1,
  /** Blob = VCDIFF of the whole chunk against the whole base chunk. */
  DELTA: 2,
  /** Blob = changed page list + VCDIFF (or raw bytes) of the changed pages against the same base pages. */
  PAGES: 3,
} as const
export type ChunkKind = (typeof ChunkKind)[keyof typeof ChunkKind]

export const ready: Promise<void> = init()

/** Use the page format while at most this share of pages changed; beyond, a whole-chunk delta finds more. */
const PAGES_MAX_SHARE = 0.5
const PAGES_MAGIC = 0x53504731 // 'SPG1'
const PAYLOAD_VCDIFF = 1
const PAYLOAD_RAW = 2

/**
 * A chunk still in its file: the thread that encodes or decodes it reads it (into a reused buffer), so
 * no 1 MiB buffer is read on the main thread, moved to a worker and collected there, and a base chunk
 * whose hash already says "unchanged" is not read at all.
 */
export interface FileSpan {
  path: string
  offset: number
  length: number
}

/** A chunk's bytes, or where to read them. */
export type ChunkBytes = Uint8Array | FileSpan

export function chunkLength(chunk: ChunkBytes): number {
  return chunk instanceof Uint8Array ? chunk.byteLength : chunk.length
}

/** Per-thread read buffers, one per role (new chunk, base chunk): valid until the next call here. */
const readBuffers: Buffer[] = []

function bytesOf(chunk: ChunkBytes, slot: 0 | 1): Uint8Array {
  if (chunk instanceof Uint8Array) return chunk
  if (chunk.length > MAX_CHUNK_BYTES)
    throw new CodecError('corrupt', `${chunk.path}: ${chunk.length} bytes, above the chunk maximum`)
  readBuffers[slot] ??= Buffer.allocUnsafeSlow(MAX_CHUNK_BYTES)
  const out = readBuffers[slot].subarray(0, chunk.length)
  let fd: number
  try {
    fd = openSync(chunk.path, 'r')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT')
      throw new CodecError('missing', `${chunk.path} is gone`)
    throw error
  }
  try {
    for (let filled = 0; filled < chunk.length; ) {
      const read = readSync(fd, out, filled, chunk.length - filled, chunk.offset + filled)
      if (read === 0)
        throw new CodecError('truncated', `${chunk.path} ends inside bytes ${chunk.offset}+${chunk.length}`)
      filled += read
    }
  } finally {
    closeSync(fd)
  }
  return out
}

/** A result that is a read buffer must be copied before it leaves the thread (and is transferred). */
function owned(result: Uint8Array): Uint8Array {
  if (!readBuffers.some((buffer) => buffer.buffer === result.buffer)) return result
  const copy = Buffer.allocUnsafeSlow(result.byteLength)
  copy.set(result)
  return copy
}

export interface EncodeInput {
  alg: HashAlg
  data: ChunkBytes
  /** Base chunk; absent when the base has no chunk here (grown part or new part). */
  base?: ChunkBytes
  /** Expected hash of `base` when known (from a manifest): a mismatch means a corrupt base blob. */
  base_hash?: Uint8Array
  /** Without a base chunk, try a delta against zero bytes (packs zero-filled and repetitive chunks). */
  try_empty_source: boolean
}

export interface EncodeOutput {
  kind: ChunkKind
  hash: Uint8Array
  /** Stored bytes for RAW, DELTA, PAGES; for RAW this is `data` itself. */
  blob?: Uint8Array
  /** Hash of the base chunk a DELTA/PAGES blob applies to. */
  base_hash?: Uint8Array
  /** DELTA/PAGES: hash of the blob (computed here, off the main thread). */
  blob_hash?: Uint8Array
  /** Why the codec could not compute a delta (ENOMEM...): the chunk (or its pages) is stored as bytes. */
  refused?: string
}

/**
 * A delta strictly smaller than the target, or why there is none: `not-smaller`, or `refused` when
 * xdelta3-wasm cannot compute one at all. Its heap is a fixed 16 MiB and its instruction buffer grows
 * with the number of matches, so a 1 MiB chunk of many short matches (small alphabets, shifted page
 * tables) fails with ENOMEM; the caller then stores the chunk's bytes, which is always possible.
 */
type DeltaAttempt = { delta: Uint8Array; refused?: undefined } | { delta?: undefined; refused?: string }

function xdeltaEncode(target: Uint8Array, source: Uint8Array): DeltaAttempt {
  if (target.byteLength > MAX_CHUNK_BYTES || source.byteLength > MAX_CHUNK_BYTES) {
    throw new Error(`xdelta3-wasm input above ${MAX_CHUNK_BYTES} bytes`)
  }
  // Only a delta strictly smaller than the target is worth keeping; ENOSPC says it is not.
  const limit = Math.max(target.byteLength - 1, 0)
  let result: ReturnType<typeof xd3_encode_memory>
  try {
    result = xd3_encode_memory(target, source, limit, xd3_smatch_cfg.DEFAULT)
  } catch (error) {
    // A trap inside the wasm module: no delta, the raw bytes still make a correct chunk.
    return { refused: `xdelta3 trapped: ${(error as Error).message}` }
  }
  if (result.ret === WASI_ERRNO.ENOSPC) return {}
  if (result.ret !== 0) return { refused: `xdelta3 encode failed: ${result.str}` }
  return { delta: result.output }
}

function xdeltaDecode(delta: Uint8Array, source: Uint8Array, size_bytes: number): Uint8Array {
  const result = xd3_decode_memory(delta, source, size_bytes)
  if (result.ret !== 0 || result.output.byteLength !== size_bytes) {
    throw new CodecError(
      'undecodable',
      `VCDIFF does not decode (${result.str}, ${result.output.byteLength} bytes)`,
    )
  }
  return result.output
}

function changedPages(data: Uint8Array, base: Uint8Array): number[] {
  const pages: number[] = []
  const a = Buffer.from(data.buffer, data.byteOffset, data.byteLength)
  const b = Buffer.from(base.buffer, base.byteOffset, base.byteLength)
  // Both chunks are in memory here, so a byte comparison is the exact (and cheaper) form of a page hash compare.
  for (let offset = 0, page = 0; offset < a.length; offset += PAGE_BYTES, page++) {
    const end = Math.min(offset + PAGE_BYTES, a.length)
    if (a.compare(b, offset, end, offset, end) !== 0) pages.push(page)
  }
  return pages
}

/** Two reusable page buffers per thread: gathering pages must not leave ~2 MiB of garbage per chunk. */
const scratch: Buffer[] = []

function gatherPages(chunk: Uint8Array, pages: readonly number[], slot: 0 | 1): Uint8Array {
  scratch[slot] ??= Buffer.allocUnsafeSlow(MAX_CHUNK_BYTES)
  const out = scratch[slot].subarray(0, pageSpan(chunk.byteLength, pages))
  let at = 0
  for (const page of pages) {
    const start = page * PAGE_BYTES
    const end = Math.min(start + PAGE_BYTES, chunk.byteLength)
    out.set(chunk.subarray(start, end), at)
    at += end - start
  }
  return out
}

function pageSpan(chunk_bytes: number, pages: readonly number[]): number {
  let total = 0
  for (const page of pages) total += Math.min(PAGE_BYTES, chunk_bytes - page * PAGE_BYTES)
  return total
}

function encodePages(
  data: Uint8Array,
  base: Uint8Array,
  pages: readonly number[],
): { blob: Uint8Array; refused?: string } {
  const target = gatherPages(data, pages, 0)
  const attempt = xdeltaEncode(target, gatherPages(base, pages, 1))
  const vcdiff = attempt.delta
  const payload = vcdiff ?? target
  const header = Buffer.allocUnsafe(12 + 4 * pages.length)
  header.writeUInt32LE(PAGES_MAGIC, 0)
  header.writeUInt32LE(vcdiff ? PAYLOAD_VCDIFF : PAYLOAD_RAW, 4)
  header.writeUInt32LE(pages.length, 8)
  for (const [i, page] of pages.entries()) header.writeUInt32LE(page, 12 + 4 * i)
  const blob = Buffer.concat([header, payload])
  return attempt.refused ? { blob, refused: attempt.refused } : { blob }
}

/**
 * Decodes over the base chunk in place (no new 1 MiB buffer per chunk). `undo` puts the base's own pages
 * back (they are kept in the scratch buffer), valid until the next page call on this thread.
 */
function decodePages(blob: Uint8Array, base: Uint8Array): { out: Uint8Array; undo: () => void } {
  const view = Buffer.from(blob.buffer, blob.byteOffset, blob.byteLength)
  if (view.length < 12 || view.readUInt32LE(0) !== PAGES_MAGIC)
    throw new CodecError('undecodable', 'bad page-delta header')
  const payloadKind = view.readUInt32LE(4)
  const count = view.readUInt32LE(8)
  const pagesEnd = 12 + 4 * count
  if (view.length < pagesEnd) throw new CodecError('undecodable', 'page-delta header truncated')
  const pages: number[] = []
  for (let i = 0; i < count; i++) {
    const page = view.readUInt32LE(12 + 4 * i)
    if (page * PAGE_BYTES >= base.byteLength)
      throw new CodecError('undecodable', `page ${page} outside the chunk`)
    pages.push(page)
  }
  const span = pageSpan(base.byteLength, pages)
  const payload = view.subarray(pagesEnd)
  const original = gatherPages(base, pages, 1)
  let target: Uint8Array
  if (payloadKind === PAYLOAD_VCDIFF) target = xdeltaDecode(payload, original, span)
  else if (payloadKind === PAYLOAD_RAW && payload.length === span) target = payload
  else throw new CodecError('undecodable', 'bad page-delta payload')
  scatterPages(target, base, pages)
  return { out: base, undo: () => scatterPages(original, base, pages) }
}

function scatterPages(from: Uint8Array, chunk: Uint8Array, pages: readonly number[]): void {
  let at = 0
  for (const page of pages) {
    const start = page * PAGE_BYTES
    const length = Math.min(PAGE_BYTES, chunk.byteLength - start)
    chunk.set(from.subarray(at, at + length), start)
    at += length
  }
}

/** Encode one chunk against its base chunk: SAME, or the smallest of page delta, whole delta and raw. */
export function encodeChunk(input: EncodeInput): EncodeOutput {
  const out = encodeKind(input)
  if (out.kind === ChunkKind.DELTA || out.kind === ChunkKind.PAGES)
    out.blob_hash = hashBytes(input.alg, out.blob!)
  if (out.blob) out.blob = owned(out.blob)
  return out
}

function encodeKind(input: EncodeInput): EncodeOutput {
  const { alg } = input
  const data = bytesOf(input.data, 0)
  const hash = hashBytes(alg, data)
  const raw = (refused: string | undefined): EncodeOutput =>
    refused ? { kind: ChunkKind.RAW, hash, blob: data, refused } : { kind: ChunkKind.RAW, hash, blob: data }
  if (input.base === undefined) {
    if (!input.try_empty_source || data.byteLength === 0) return raw(undefined)
    const attempt = xdeltaEncode(data, new Uint8Array(0))
    if (attempt.delta) return { kind: ChunkKind.DELTA, hash, blob: attempt.delta, base_hash: emptyHash(alg) }
    return raw(attempt.refused)
  }
  if (input.base_hash && sameHash(hash, input.base_hash)) return { kind: ChunkKind.SAME, hash }
  const base = bytesOf(input.base, 1)
  // Equal bytes (memcmp, ~40 GB/s) need no second hash (~1.6 GB/s): the base hash is the content hash.
  if (!input.base_hash && Buffer.from(data.buffer, data.byteOffset, data.byteLength).equals(base))
    return { kind: ChunkKind.SAME, hash }
  const baseHash = hashBytes(alg, base)
  if (input.base_hash && !sameHash(baseHash, input.base_hash)) {
    throw new CodecError(
      'corrupt',
      `base chunk hash ${toHex(baseHash)} is not the expected ${toHex(input.base_hash)}`,
    )
  }
  if (sameHash(hash, baseHash)) return { kind: ChunkKind.SAME, hash }
  if (data.byteLength === base.byteLength) {
    const pages = changedPages(data, base)
    const pageCount = Math.ceil(data.byteLength / PAGE_BYTES)
    if (pages.length <= pageCount * PAGES_MAX_SHARE) {
      const { blob, refused } = encodePages(data, base, pages)
      if (blob.byteLength >= data.byteLength) return raw(refused)
      const out: EncodeOutput = { kind: ChunkKind.PAGES, hash, blob, base_hash: baseHash }
      if (refused) out.refused = refused
      return out
    }
  }
  const attempt = xdeltaEncode(data, base)
  if (attempt.delta) return { kind: ChunkKind.DELTA, hash, blob: attempt.delta, base_hash: baseHash }
  return raw(attempt.refused)
}

export interface DecodeInput {
  alg: HashAlg
  kind: ChunkKind
  /** Expected content hash of the result. */
  hash: Uint8Array
  size_bytes: number
  /** The stored blob (RAW, DELTA, PAGES). */
  blob?: ChunkBytes
  /** The base chunk (SAME, DELTA, PAGES); PAGES decodes over it in place. */
  base?: ChunkBytes
  /** Hash the base must have (DELTA, PAGES); a different base is refused. */
  base_hash?: Uint8Array
}

/**
 * Rebuild one chunk and verify it by hash; every failure names what is wrong.
 * The base is hashed only when the result is wrong (to tell a wrong base from a bad delta): the content
 * hash already proves a correct result, and skipping the base hash halves restore's hashing.
 */
export function decodeChunk(input: DecodeInput): Uint8Array {
  return owned(decodeKind(input))
}

/** Where a decoded chunk goes when the decoding thread writes it itself. */
export interface WriteTarget {
  path: string
  offset: number
}

/**
 * Decode, verify and write the chunk at `target` (an existing file) from this thread: the result never
 * crosses threads, so neither a copy nor a fresh 1 MiB buffer per chunk is needed.
 */
export function decodeChunkTo(input: DecodeInput, target: WriteTarget): number {
  const out = decodeKind(input)
  const fd = openSync(target.path, 'r+')
  try {
    for (let written = 0; written < out.byteLength; )
      written += writeSync(fd, out, written, out.byteLength - written, target.offset + written)
  } finally {
    closeSync(fd)
  }
  return out.byteLength
}

function decodeKind(input: DecodeInput): Uint8Array {
  const { alg, kind } = input
  let out: Uint8Array
  if (kind === ChunkKind.RAW || kind === ChunkKind.SAME) {
    const given = kind === ChunkKind.RAW ? input.blob : input.base
    if (!given) throw new Error('decodeChunk: bytes missing')
    const bytes = bytesOf(given, 1)
    if (bytes.byteLength < input.size_bytes) {
      throw new CodecError('truncated', `${bytes.byteLength} bytes, expected ${input.size_bytes}`)
    }
    out = bytes
  } else {
    const { base_hash } = input
    if (!input.blob || !input.base || !base_hash)
      throw new Error('decodeChunk: delta needs blob, base and base_hash')
    const blob = bytesOf(input.blob, 0)
    const base = bytesOf(input.base, 1)
    const baseCheck = () => {
      const actual = hashBytes(alg, base)
      if (!sameHash(actual, base_hash)) {
        throw new CodecError(
          'wrong-base',
          `delta was made against base chunk ${toHex(base_hash)}, got ${toHex(actual)}`,
        )
      }
    }
    let undo = () => {}
    try {
      if (kind === ChunkKind.DELTA) out = xdeltaDecode(blob, base, input.size_bytes)
      else ({ out, undo } = decodePages(blob, base))
    } catch (error) {
      baseCheck()
      if (error instanceof CodecError) throw error
      throw new CodecError('undecodable', (error as Error).message)
    }
    if (!rightContent(alg, out, input)) {
      undo()
      baseCheck()
      throw contentError(input)
    }
    return out
  }
  if (!rightContent(alg, out, input)) throw contentError(input)
  return out
}

function rightContent(alg: HashAlg, out: Uint8Array, input: DecodeInput): boolean {
  return out.byteLength === input.size_bytes && sameHash(hashBytes(alg, out), input.hash)
}

function contentError(input: DecodeInput): CodecError {
  return new CodecError('corrupt', `content hash differs from the manifest's ${toHex(input.hash)}`)
}
