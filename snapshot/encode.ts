import { recycle } from './buffers.ts'
import { type ChunkBytes, ChunkKind, chunkLength, type EncodeOutput } from './codec.ts'
import type { CodecPool } from './codec-pool.ts'
import { ChunkError, CodecError } from './errors.ts'
import type { HashAlg } from './hash.ts'
import { checkParts, type ImagePart, imageChunks } from './image.ts'
import { MAX_CHUNK_BYTES } from './limits.ts'
import type { ChunkEntry, PartManifest } from './manifest.ts'
import { OrderedWindow } from './window.ts'

export interface BaseChunk {
  bytes: ChunkBytes
  /** Known content hash (from the base manifest); absent when the base is a plain file. */
  hash?: Uint8Array
}

/** The base image, chunk by chunk (same part name, same index). */
export interface BaseSource {
  /** Shown in errors about the base. */
  readonly label: string
  chunk(part: string, index: number): Promise<BaseChunk | undefined>
}

/** Where new blobs go (content-addressed: the same hash twice is the same bytes). */
export interface BlobSink {
  put(hash: Uint8Array, bytes: Uint8Array): Promise<void>
}

export type Progress = (done_bytes: number, total_bytes: number | undefined) => void

export interface EncodeOptions {
  pool: CodecPool
  alg: HashAlg
  chunk_bytes: number
  /** Without a base every chunk is RAW: the image becomes a base. */
  base?: BaseSource
  sink: BlobSink
  total_bytes?: number
  on_progress?: Progress
  /** A chunk the codec could not delta-encode (ENOMEM...): it was stored as bytes instead. */
  on_refused?: (part: string, index: number, reason: string) => void
  /**
   * The entry of a chunk known to be unchanged from the parent (same bytes, same base): used as it is,
   * the chunk is neither read nor hashed. Undefined: encode it.
   */
  reuse?: (part: ImagePart, index: number, length: number) => ChunkEntry | undefined
}

/** Chunk, hash and delta-encode every part against the base; new blobs go to the sink. Streams. */
export async function encodeImage(
  parts: readonly ImagePart[],
  options: EncodeOptions,
): Promise<PartManifest[]> {
  const { pool, chunk_bytes } = options
  if (chunk_bytes < 1 || chunk_bytes > MAX_CHUNK_BYTES)
    throw new Error(`chunk size ${chunk_bytes} out of range`)
  checkParts(parts)
  const result: PartManifest[] = []
  let done_bytes = 0
  for (const part of parts) {
    const chunks: ChunkEntry[] = []
    let size_bytes = 0
    const window = new OrderedWindow<ChunkEntry>(Math.max(pool.window, 2), (entry) => {
      chunks.push(entry)
    })
    let index = 0
    for await (const data of imageChunks(part, chunk_bytes)) {
      const at = index++
      const length = chunkLength(data)
      size_bytes += length
      const reused = options.reuse?.(part, at, length)
      if (reused) {
        done_bytes += length
        options.on_progress?.(done_bytes, options.total_bytes)
        await window.push(Promise.resolve(reused))
        continue
      }
      await window.push(
        encodeOne(part.name, at, data, options).then((entry) => {
          done_bytes += length
          options.on_progress?.(done_bytes, options.total_bytes)
          return entry
        }),
      )
    }
    await window.drain()
    result.push({ name: part.name, size_bytes, chunks })
  }
  return result
}

async function encodeOne(
  part: string,
  index: number,
  data: ChunkBytes,
  options: EncodeOptions,
): Promise<ChunkEntry> {
  const { pool, alg, base, sink } = options
  let out: EncodeOutput
  try {
    const baseChunk = base ? await base.chunk(part, index) : undefined
    out = await pool.encode({
      alg,
      data,
      ...(baseChunk ? { base: baseChunk.bytes } : {}),
      ...(baseChunk?.hash ? { base_hash: baseChunk.hash } : {}),
      // Chunks new since the base are packed when that helps (zeros, text); a base itself stays RAW
      // because its chunks are the sources of later deltas.
      try_empty_source: base !== undefined,
    })
  } catch (error) {
    if (error instanceof CodecError) {
      throw new ChunkError(
        { snapshot_id: base?.label ?? '(new base)', part, index },
        error.problem,
        error.message,
      )
    }
    throw error
  }
  if (out.refused) options.on_refused?.(part, index, out.refused)
  if (out.kind === ChunkKind.RAW) {
    await sink.put(out.hash, out.blob!)
    recycle(out.blob)
    return { k: out.kind, h: out.hash }
  }
  if (out.kind === ChunkKind.SAME) return { k: out.kind, h: out.hash }
  await sink.put(out.blob_hash!, out.blob!)
  return { k: out.kind, h: out.hash, b: out.blob_hash!, s: out.base_hash!, n: out.blob!.byteLength }
}
