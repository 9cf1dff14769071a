import { Packr } from 'msgpackr'
import { z } from 'zod'
import { ChunkKind } from './codec.ts'
import { emptyHash, HASH_ALGS, type HashAlg, hashBytes, sameHash, toHex } from './hash.ts'
import { formatSnapshotId, isSnapshotId } from './ids.ts'
import { MAX_CHUNK_BYTES } from './limits.ts'

export interface ChunkEntry {
  /** ChunkKind. */
  k: ChunkKind
  /** Content hash of the chunk (what restore must produce). */
  h: Uint8Array
  /** DELTA/PAGES: hash of the delta blob. */
  b?: Uint8Array
  /** DELTA/PAGES: content hash of the base chunk the delta applies to. */
  s?: Uint8Array
  /** DELTA/PAGES: size of the delta blob in bytes (tells truncation from corruption). */
  n?: number
}

export interface PartManifest {
  name: string
  size_bytes: number
  chunks: ChunkEntry[]
}

export interface Manifest {
  v: 1
  id: string
  node: string
  term: number
  seq: number
  parent: string | null
  time_ms: number
  /** The base this snapshot's deltas apply to; null for a base (every chunk RAW). */
  base: string | null
  /** A base made by rebasing: same content as this snapshot, derivable locally from it (old base + delta). */
  derived_from: string | null
  hash_alg: HashAlg
  chunk_bytes: number
  parts: PartManifest[]
}

const MAGIC = Buffer.from('SUSTMAN1')
const packr = new Packr({ useRecords: false, mapsAsObjects: true })

const bytes = z.instanceof(Uint8Array)
const entrySchema = z.object({
  k: z.union([z.literal(0), z.literal(1), z.literal(2), z.literal(3)]),
  h: bytes,
  b: bytes.optional(),
  s: bytes.optional(),
  n: z.number().int().nonnegative().optional(),
})
const idSchema = z.string().refine(isSnapshotId, 'not a snapshot id')
const manifestSchema = z.object({
  v: z.literal(1),
  id: idSchema,
  node: z.string(),
  term: z.number().int().nonnegative(),
  seq: z.number().int().nonnegative(),
  parent: idSchema.nullable(),
  time_ms: z.number(),
  base: idSchema.nullable(),
  derived_from: idSchema.nullable(),
  hash_alg: z.enum(HASH_ALGS as [HashAlg, ...HashAlg[]]),
  chunk_bytes: z.number().int().positive().max(MAX_CHUNK_BYTES),
  parts: z.array(
    z.object({ name: z.string(), size_bytes: z.number().int().nonnegative(), chunks: z.array(entrySchema) }),
  ),
})

/** Part names become file paths on restore: relative, no `..`, no empty segments. */
export function isSafePartName(name: string): boolean {
  if (name.length === 0 || name.length > 4096 || name.includes('\0') || name.startsWith('/')) return false
  return name.split('/').every((segment) => segment !== '' && segment !== '.' && segment !== '..')
}

/** Structural invariants beyond types: ids, chunk counts, hash sizes, delta fields. */
export function checkManifest(m: Manifest): void {
  const fail = (why: string) => {
    throw new Error(`manifest ${m.id}: ${why}`)
  }
  if (formatSnapshotId(m) !== m.id) fail('id does not match node, term and seq')
  if (m.base === null && m.parts.some((p) => p.chunks.some((c) => c.k !== ChunkKind.RAW))) {
    fail('a base has only RAW chunks')
  }
  if (m.derived_from !== null && m.base !== null) fail('only a base can be derived')
  const hashLength = hashBytes(m.hash_alg, new Uint8Array(0)).length
  const names = new Set<string>()
  for (const part of m.parts) {
    if (!isSafePartName(part.name)) fail(`unsafe part name ${JSON.stringify(part.name)}`)
    if (names.has(part.name)) fail(`duplicate part ${part.name}`)
    names.add(part.name)
    if (part.chunks.length !== Math.ceil(part.size_bytes / m.chunk_bytes))
      fail(`part ${part.name}: chunk count`)
    for (const c of part.chunks) {
      const isDelta = c.k === ChunkKind.DELTA || c.k === ChunkKind.PAGES
      if (c.h.length !== hashLength) fail(`part ${part.name}: hash length`)
      if (isDelta !== (c.b !== undefined && c.s !== undefined && c.n !== undefined))
        fail(`part ${part.name}: delta fields`)
      if (isDelta && (c.b!.length !== hashLength || c.s!.length !== hashLength))
        fail(`part ${part.name}: hash length`)
    }
  }
}

/** Manifest file: magic, sha256 of the body, msgpack body. A torn or altered manifest is refused. */
export function encodeManifest(m: Manifest): Buffer {
  checkManifest(m)
  const body = packr.pack(m)
  return Buffer.concat([MAGIC, hashBytes('sha256', body), body])
}

export function decodeManifest(data: Uint8Array): Manifest {
  const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength)
  if (buf.length < MAGIC.length + 32 || !buf.subarray(0, MAGIC.length).equals(MAGIC)) {
    throw new Error('not a Sustain manifest (bad magic)')
  }
  const body = buf.subarray(MAGIC.length + 32)
  if (!sameHash(hashBytes('sha256', body), buf.subarray(MAGIC.length, MAGIC.length + 32))) {
    throw new Error('manifest checksum mismatch (truncated or corrupt)')
  }
  const m = manifestSchema.parse(packr.unpack(body)) as Manifest
  checkManifest(m)
  return m
}

/** Size of chunk `index` of a part. */
export function chunkSize(m: Pick<Manifest, 'chunk_bytes'>, part: PartManifest, index: number): number {
  return Math.min(m.chunk_bytes, part.size_bytes - index * m.chunk_bytes)
}

/** What a DELTA or PAGES chunk refers to, by name (hex hashes; the wire format keeps one-letter fields). */
export interface DeltaRefs {
  /** The delta blob (`b`). */
  delta_blob: string
  /** The base chunk the delta applies to (`s`); '' for the empty base. */
  base_chunk: string
  /** Size of the delta blob in bytes (`n`). */
  delta_bytes: number
}

/** The references of a DELTA or PAGES chunk of manifest `m` (decoded manifests are checked to carry them). */
export function deltaRefs(m: Pick<Manifest, 'hash_alg'>, c: ChunkEntry): DeltaRefs {
  if ((c.k !== ChunkKind.DELTA && c.k !== ChunkKind.PAGES) || !c.b || !c.s || c.n === undefined) {
    throw new Error(`chunk ${toHex(c.h)} is not a delta with its references`)
  }
  const base_chunk = sameHash(c.s, emptyHash(m.hash_alg)) ? '' : toHex(c.s)
  return { delta_blob: toHex(c.b), base_chunk, delta_bytes: c.n }
}

export interface NeededBlob {
  hash: string
  /** Expected size when the manifest says (delta blobs; RAW/SAME chunks are their chunk size). */
  size_bytes: number
}

/**
 * Every blob restoring this snapshot reads, content-addressed by hex hash: chunk contents (RAW, and SAME
 * from the base), delta blobs and the base chunks they apply to. This is what a holder must replicate.
 */
export function neededBlobs(m: Manifest): Map<string, NeededBlob> {
  const needed = new Map<string, NeededBlob>()
  for (const part of m.parts) {
    part.chunks.forEach((c, index) => {
      if (c.k === ChunkKind.RAW || c.k === ChunkKind.SAME) {
        const hash = toHex(c.h)
        needed.set(hash, { hash, size_bytes: chunkSize(m, part, index) })
        return
      }
      const { delta_blob, base_chunk, delta_bytes } = deltaRefs(m, c)
      needed.set(delta_blob, { hash: delta_blob, size_bytes: delta_bytes })
      // The base chunk's size is not recorded here; 0 means "unknown" (checked by hash on use).
      if (base_chunk !== '' && !needed.has(base_chunk))
        needed.set(base_chunk, { hash: base_chunk, size_bytes: 0 })
    })
  }
  return needed
}

/** Bytes this snapshot adds beyond its base (new RAW chunks and delta blobs). */
export function deltaBytes(m: Manifest): number {
  let total = 0
  for (const part of m.parts) {
    part.chunks.forEach((c, index) => {
      if (c.k === ChunkKind.RAW) total += chunkSize(m, part, index)
      else if (c.k !== ChunkKind.SAME) total += c.n!
    })
  }
  return total
}

export function imageBytes(m: Manifest): number {
  return m.parts.reduce((sum, part) => sum + part.size_bytes, 0)
}
