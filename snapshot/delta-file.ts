import { open } from 'node:fs/promises'
import { Packr } from 'msgpackr'
import { AtomicFile, directoryImageWriter, fileImageWriter, type ImageWriter } from './atomic-file.ts'
import { ChunkKind, type FileSpan } from './codec.ts'
import type { CodecPool } from './codec-pool.ts'
import { encodeImage, type Progress } from './encode.ts'
import { SnapshotError } from './errors.ts'
import { FileBaseSource } from './file-base.ts'
import { type HashAlg, toHex } from './hash.ts'
import { formatSnapshotId } from './ids.ts'
import { knownImageBytes, openImage } from './image.ts'
import { DEFAULT_CHUNK_BYTES } from './limits.ts'
import { chunkSize, decodeManifest, encodeManifest, type Manifest } from './manifest.ts'
import { restoreImage } from './restore.ts'

/**
 * A self-contained delta file (`sustain image diff`): header, the blobs back to back, then a trailer
 * (manifest + blob index) and a footer pointing at it. Written as a stream, renamed into place at the end.
 */
const MAGIC = Buffer.from('SUSTDLT1')
const FOOTER_BYTES = 8 + 4 + MAGIC.length
const packr = new Packr({ useRecords: false, mapsAsObjects: true })

/** The base of a delta file is "the BASE image given on the command line", not a stored snapshot. */
const FILE_NODE = '00'
const FILE_BASE_ID = formatSnapshotId({ node: FILE_NODE, term: 0, seq: 0 })

interface Trailer {
  manifest: Uint8Array
  /** [blob hash, offset, length] */
  index: [Uint8Array, number, number][]
}

export interface DiffOptions {
  pool: CodecPool
  hash_alg?: HashAlg
  chunk_bytes?: number
  on_progress?: Progress
}

export interface DiffResult {
  manifest: Manifest
  delta_bytes: number
}

/** Encode NEW against BASE (files or directories) into the delta file OUT. */
export async function diffImages(
  basePath: string,
  newPath: string,
  outPath: string,
  options: DiffOptions,
): Promise<DiffResult> {
  const chunk_bytes = options.chunk_bytes ?? DEFAULT_CHUNK_BYTES
  const hash_alg = options.hash_alg ?? 'sha256'
  const base = new FileBaseSource(basePath, await openImage(basePath), chunk_bytes)
  const parts = await openImage(newPath)
  const out = await AtomicFile.create(outPath)
  const index: Trailer['index'] = []
  const written = new Set<string>()
  let chain = out.write(MAGIC)
  try {
    const total_bytes = await knownImageBytes(parts)
    const encoded = await encodeImage(parts, {
      pool: options.pool,
      alg: hash_alg,
      chunk_bytes,
      base,
      sink: {
        put(hash, bytes) {
          const hex = toHex(hash)
          if (written.has(hex)) return chain
          written.add(hex)
          // Appends are serialized so offsets are exact.
          chain = chain.then(async () => {
            index.push([hash, out.position, bytes.byteLength])
            await out.write(bytes)
          })
          return chain
        },
      },
      ...(total_bytes !== undefined ? { total_bytes } : {}),
      ...(options.on_progress ? { on_progress: options.on_progress } : {}),
    })
    await chain
    const manifest: Manifest = {
      v: 1,
      id: formatSnapshotId({ node: FILE_NODE, term: 0, seq: 1 }),
      node: FILE_NODE,
      term: 0,
      seq: 1,
      parent: FILE_BASE_ID,
      time_ms: Date.now(),
      base: FILE_BASE_ID,
      derived_from: null,
      hash_alg,
      chunk_bytes,
      parts: encoded,
    }
    const trailer = packr.pack({ manifest: encodeManifest(manifest), index } satisfies Trailer)
    const footer = Buffer.alloc(FOOTER_BYTES)
    footer.writeBigUInt64LE(BigInt(out.position), 0)
    footer.writeUInt32LE(trailer.length, 8)
    MAGIC.copy(footer, 12)
    await out.write(trailer)
    await out.write(footer)
    const delta_bytes = out.position
    await out.commit()
    return { manifest, delta_bytes }
  } catch (error) {
    await out.abort()
    throw error
  } finally {
    await base.close()
  }
}

export interface DeltaFile {
  manifest: Manifest
  blobs: Map<string, { offset: number; length: number }>
  read(hash: string): Promise<Uint8Array | undefined>
  /** Where a blob is in the file, for a codec thread to read it itself. */
  span(hash: string): FileSpan | undefined
  close(): Promise<void>
}

/** Open a delta file; a bad header, footer or trailer is an error naming the file. */
export async function openDeltaFile(path: string): Promise<DeltaFile> {
  const handle = await open(path, 'r')
  try {
    const { size } = await handle.stat()
    const head = Buffer.alloc(MAGIC.length)
    await handle.read(head, 0, MAGIC.length, 0)
    if (size < MAGIC.length + FOOTER_BYTES || !head.equals(MAGIC))
      throw new SnapshotError(`${path}: not a Sustain delta file`)
    const footer = Buffer.alloc(FOOTER_BYTES)
    await handle.read(footer, 0, FOOTER_BYTES, size - FOOTER_BYTES)
    if (!footer.subarray(12).equals(MAGIC))
      throw new SnapshotError(`${path}: truncated delta file (footer missing)`)
    const trailerAt = Number(footer.readBigUInt64LE(0))
    const trailerLength = footer.readUInt32LE(8)
    if (trailerAt + trailerLength + FOOTER_BYTES !== size)
      throw new SnapshotError(`${path}: delta file footer is inconsistent`)
    const trailerBytes = Buffer.alloc(trailerLength)
    await handle.read(trailerBytes, 0, trailerLength, trailerAt)
    let trailer: Trailer
    let manifest: Manifest
    try {
      trailer = packr.unpack(trailerBytes) as Trailer
      manifest = decodeManifest(trailer.manifest)
    } catch (error) {
      throw new SnapshotError(`${path}: delta file index is corrupt: ${(error as Error).message}`)
    }
    const blobs = new Map<string, { offset: number; length: number }>()
    for (const [hash, offset, length] of trailer.index) {
      if (offset < MAGIC.length || offset + length > trailerAt)
        throw new SnapshotError(`${path}: blob index points outside the file`)
      blobs.set(toHex(hash), { offset, length })
    }
    return {
      manifest,
      blobs,
      async read(hash) {
        const at = blobs.get(hash)
        if (!at) return undefined
        const bytes = Buffer.allocUnsafeSlow(at.length)
        await handle.read(bytes, 0, at.length, at.offset)
        return bytes
      },
      span(hash) {
        const at = blobs.get(hash)
        return at && { path, offset: at.offset, length: at.length }
      },
      close: () => handle.close(),
    }
  } catch (error) {
    await handle.close()
    throw error
  }
}

export interface ApplyOptions {
  pool: CodecPool
  /** Default true: fsync OUT before and after the rename. */
  durable?: boolean
  on_progress?: Progress
}

/** Rebuild NEW from BASE and a delta file into OUT (atomically), verifying every chunk and the base. */
export async function applyDelta(
  basePath: string,
  deltaPath: string,
  outPath: string,
  options: ApplyOptions,
): Promise<Manifest> {
  const delta = await openDeltaFile(deltaPath)
  const baseParts = await openImage(basePath)
  const base = new FileBaseSource(basePath, baseParts, delta.manifest.chunk_bytes)
  const oneFile = delta.manifest.parts.length === 1 && delta.manifest.parts[0]!.name === 'image'
  const durable = { durable: options.durable ?? true }
  const writer: ImageWriter = oneFile
    ? fileImageWriter(outPath, durable)
    : directoryImageWriter(outPath, durable)
  try {
    await restoreImage(delta.manifest, {
      pool: options.pool,
      // Spans: the codec threads read blobs from the delta file; no buffer per chunk on the main thread.
      blobs: { get: (hash) => delta.read(toHex(hash)), span: async (hash) => delta.span(toHex(hash)) },
      base,
      writer,
      ...(options.on_progress ? { on_progress: options.on_progress } : {}),
    })
    return delta.manifest
  } finally {
    await base.close()
    await delta.close()
  }
}

export interface FileProblem {
  part: string
  index: number
  detail: string
}

/** Check every blob in a delta file against its hash; each problem names the chunk that uses the blob. */
export async function verifyDeltaFile(
  path: string,
  pool: CodecPool,
): Promise<{ manifest: Manifest; problems: FileProblem[] }> {
  const delta = await openDeltaFile(path)
  try {
    const { manifest } = delta
    const bad = new Map<string, string>()
    for (const [hash, at] of delta.blobs) {
      const bytes = (await delta.read(hash))!
      if (toHex(await pool.hash(manifest.hash_alg, bytes)) !== hash)
        bad.set(hash, `blob at offset ${at.offset} does not match its hash`)
    }
    const problems: FileProblem[] = []
    for (const part of manifest.parts) {
      for (const [index, c] of part.chunks.entries()) {
        const hash = c.k === ChunkKind.RAW ? toHex(c.h) : c.b ? toHex(c.b) : undefined
        if (!hash) continue
        const at = delta.blobs.get(hash)
        if (!at) problems.push({ part: part.name, index, detail: `blob ${hash} is missing` })
        else if (bad.has(hash)) problems.push({ part: part.name, index, detail: bad.get(hash)! })
        else if (c.k === ChunkKind.RAW && at.length !== chunkSize(manifest, part, index)) {
          problems.push({ part: part.name, index, detail: `raw chunk has ${at.length} bytes` })
        }
      }
    }
    return { manifest, problems }
  } finally {
    await delta.close()
  }
}
