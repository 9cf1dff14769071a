import type { ImageWriter, PartFile } from './atomic-file.ts'
import { recycle } from './buffers.ts'
import { type ChunkBytes, ChunkKind, chunkLength, type DecodeInput, type FileSpan } from './codec.ts'
import type { CodecPool } from './codec-pool.ts'
import type { BaseSource, Progress } from './encode.ts'
import { ChunkError, CodecError } from './errors.ts'
import { emptyHash, sameHash, toHex } from './hash.ts'
import { type ChunkEntry, chunkSize, imageBytes, type Manifest, type PartManifest } from './manifest.ts'
import { InFlight, OrderedWindow } from './window.ts'

/** Content-addressed blob reads; undefined when absent. Integrity is checked by the decoder. */
export interface BlobSource {
  get(hash: Uint8Array): Promise<Uint8Array | undefined>
  /** Where a blob is, for the codec thread to read it itself (large blobs: raw and base chunks). */
  span?(hash: Uint8Array): Promise<FileSpan | undefined>
}

export interface RestoreOptions {
  pool: CodecPool
  blobs: BlobSource
  /**
   * Base chunks by position (a plain base file, as in `sustain image apply`). Without it, base chunks are
   * blobs named by their content hash.
   */
  base?: BaseSource
  writer: ImageWriter
  on_progress?: Progress
}

/** Rebuild every part of a snapshot, verifying every chunk by hash, and commit the output atomically. */
export async function restoreImage(m: Manifest, options: RestoreOptions): Promise<void> {
  const total_bytes = imageBytes(m)
  let done_bytes = 0
  try {
    for (const part of m.parts) {
      const file = await options.writer.openPart(part.name)
      await restorePart(m, part, file, options, (bytes) => {
        done_bytes += bytes
        options.on_progress?.(done_bytes, total_bytes)
      })
      await file.commit()
    }
    await options.writer.commit()
  } catch (error) {
    await options.writer.abort()
    throw error
  }
}

/** Positioned writes in flight: the writes overlap decoding instead of holding up the window. */
const WRITES_IN_FLIGHT = 4

async function restorePart(
  m: Manifest,
  part: PartManifest,
  file: PartFile,
  options: RestoreOptions,
  advance: (bytes: number) => void,
): Promise<void> {
  const window_size = Math.max(options.pool.window, 2)
  const path = file.write_path
  if (path !== undefined) {
    // The codec threads write the chunks themselves: the main thread only reads blobs and keeps order.
    const window = new OrderedWindow<number>(window_size, advance)
    for (let index = 0; index < part.chunks.length; index++) {
      const target = { path, offset: index * m.chunk_bytes }
      await window.push(
        restoreChunk(m, part, index, options, (input) => options.pool.decodeTo(input, target)),
      )
    }
    await window.drain()
    return
  }
  const writes = new InFlight(WRITES_IN_FLIGHT)
  let at = 0
  const window = new OrderedWindow<Uint8Array>(window_size, async (bytes) => {
    const written = file.writeAt(bytes, at).then(() => {
      recycle(bytes)
      advance(bytes.byteLength)
    })
    at += bytes.byteLength
    await writes.add(written)
  })
  for (let index = 0; index < part.chunks.length; index++) {
    await window.push(restoreChunk(m, part, index, options, (input) => options.pool.decode(input)))
  }
  await window.drain()
  await writes.drain()
}

async function restoreChunk<T>(
  m: Manifest,
  part: PartManifest,
  index: number,
  options: RestoreOptions,
  decode: (input: DecodeInput) => Promise<T>,
): Promise<T> {
  const entry = part.chunks[index]!
  const location = { snapshot_id: m.id, part: part.name, index }
  const size_bytes = chunkSize(m, part, index)
  const fail = (problem: ChunkError['problem'], detail: string) => new ChunkError(location, problem, detail)
  const need = async (hash: Uint8Array, what: string): Promise<Uint8Array> => {
    const bytes = await options.blobs.get(hash)
    if (!bytes) throw fail('missing', `${what} blob ${toHex(hash)} is not in the store`)
    return bytes
  }
  const needChunk = async (hash: Uint8Array, what: string): Promise<ChunkBytes> => {
    if (!options.blobs.span) return need(hash, what)
    const span = await options.blobs.span(hash)
    if (!span) throw fail('missing', `${what} blob ${toHex(hash)} is not in the store`)
    return span
  }
  const baseOf = async (hash: Uint8Array): Promise<ChunkBytes> => {
    if (sameHash(hash, emptyHash(m.hash_alg))) return new Uint8Array(0)
    if (!options.base) return needChunk(hash, 'base chunk')
    const chunk = await options.base.chunk(part.name, index)
    if (!chunk) throw fail('wrong-base', `${options.base.label} has no chunk ${index} in part ${part.name}`)
    return chunk.bytes
  }
  let blob: ChunkBytes | undefined
  let base: ChunkBytes | undefined
  if (entry.k === ChunkKind.RAW) blob = await needChunk(entry.h, 'chunk')
  else if (entry.k === ChunkKind.SAME) base = await baseOf(entry.h)
  else {
    // Both reads at once; a failed base read must not go unobserved while the blob read fails first.
    const baseRead = baseOf(entry.s!)
    baseRead.catch(() => {})
    blob = await needChunk(entry.b!, 'delta')
    const length = chunkLength(blob)
    if (length !== entry.n) {
      throw fail(
        length < entry.n! ? 'truncated' : 'corrupt',
        `delta blob has ${length} bytes, manifest says ${entry.n}`,
      )
    }
    base = await baseRead
  }
  try {
    return await decode({
      alg: m.hash_alg,
      kind: entry.k,
      hash: entry.h,
      size_bytes,
      ...(blob ? { blob } : {}),
      ...(base ? { base } : {}),
      ...(entry.s ? { base_hash: entry.s } : {}),
    })
  } catch (error) {
    if (!(error instanceof CodecError)) throw error
    throw describe(error, entry, options, fail)
  }
}

function describe(
  error: CodecError,
  entry: ChunkEntry,
  options: RestoreOptions,
  fail: (problem: ChunkError['problem'], detail: string) => ChunkError,
): ChunkError {
  // A base chunk fetched by its own hash that hashes differently is a corrupt blob, not a wrong base.
  if (!options.base && error.problem === 'wrong-base') return fail('corrupt', `base chunk ${error.message}`)
  if (options.base && entry.k === ChunkKind.SAME && error.problem === 'corrupt') {
    return fail('wrong-base', `${options.base.label} differs from the base this delta was made against`)
  }
  return fail(error.problem, error.message)
}
