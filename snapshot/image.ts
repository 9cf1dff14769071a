import { readdir, stat } from 'node:fs/promises'
import { join, relative, sep } from 'node:path'
import { takeBuffer } from './buffers.ts'
import type { ChunkBytes } from './codec.ts'
import { isSafePartName } from './manifest.ts'

/**
 * One named part of an image (VM memory stream, a disk image, one file of a state directory), read as a
 * stream: either a file (read by position) or any async byte stream (e.g. a QEMU migration pipe).
 */
export type ImagePart = FilePart | { name: string; stream: () => AsyncIterable<Uint8Array> }

export interface FilePart {
  name: string
  path: string
  /** The capture this file belongs to (an opaque token, unique per capture). */
  generation?: string
  /**
   * The first `bytes` bytes are those of the part of the same name in the capture `since`: the engine
   * reuses that capture's chunk entries for them instead of reading them (when its snapshot is the parent).
   */
  unchanged?: { since: string; bytes: number }
  /**
   * Only these byte ranges [start, end) (sorted, disjoint) can differ from the part of the same name in
   * the capture `since`: every chunk outside them reuses that capture's entry unread (a VM disk whose
   * writes a dirty bitmap tracked). The file has that capture's size.
   */
  changed?: { since: string; ranges: readonly (readonly [number, number])[] }
}

/** Whether [start, end) overlaps one of the sorted, disjoint ranges. */
export function overlapsRanges(
  ranges: readonly (readonly [number, number])[],
  start: number,
  end: number,
): boolean {
  let lo = 0
  let hi = ranges.length
  // The first range that ends after `start`: only it can overlap, the ones before end before `start`.
  while (lo < hi) {
    const mid = (lo + hi) >> 1
    if (ranges[mid]![1] <= start) lo = mid + 1
    else hi = mid
  }
  return lo < ranges.length && ranges[lo]![0] < end
}

export function imageFromFile(path: string, name = 'image'): ImagePart[] {
  return [{ name, path }]
}

/** Every regular file under `dir` is a part named by its relative path (sorted, so order is stable). */
export async function imageFromDirectory(dir: string): Promise<ImagePart[]> {
  const parts: ImagePart[] = []
  const walk = async (current: string): Promise<void> => {
    const entries = await readdir(current, { withFileTypes: true })
    for (const entry of entries) {
      const path = join(current, entry.name)
      if (entry.isDirectory()) await walk(path)
      else if (entry.isFile()) parts.push({ name: relative(dir, path).split(sep).join('/'), path })
    }
  }
  await walk(dir)
  parts.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
  return parts
}

/** A file is a one-part image; a directory is one part per file. */
export async function openImage(path: string): Promise<ImagePart[]> {
  return (await stat(path)).isDirectory() ? imageFromDirectory(path) : imageFromFile(path)
}

export function checkParts(parts: readonly ImagePart[]): void {
  const names = new Set<string>()
  for (const part of parts) {
    if (!isSafePartName(part.name)) throw new Error(`unsafe part name ${JSON.stringify(part.name)}`)
    if (names.has(part.name)) throw new Error(`duplicate part name ${part.name}`)
    names.add(part.name)
  }
}

/** Total size when every part is a file (for progress), else undefined. */
export async function knownImageBytes(parts: readonly ImagePart[]): Promise<number | undefined> {
  let total = 0
  for (const part of parts) {
    if (!('path' in part)) return undefined
    total += (await stat(part.path)).size
  }
  return total
}

/**
 * Fixed-size chunks of a part: spans of a file (the codec thread reads them), or buffers cut from a stream.
 * The file's size is taken once: a file that shrinks meanwhile fails the read of its last span.
 */
export async function* imageChunks(part: ImagePart, chunk_bytes: number): AsyncGenerator<ChunkBytes> {
  if (!('path' in part)) {
    yield* streamChunks(part.stream, chunk_bytes)
    return
  }
  const { size } = await stat(part.path)
  for (let offset = 0; offset < size; offset += chunk_bytes)
    yield { path: part.path, offset, length: Math.min(chunk_bytes, size - offset) }
}

/** Fixed-size chunks of a stream, each in its own buffer (so it can move to a worker thread). */
async function* streamChunks(
  stream: () => AsyncIterable<Uint8Array>,
  chunk_bytes: number,
): AsyncGenerator<Buffer> {
  let chunk = takeBuffer(chunk_bytes)
  let filled = 0
  for await (const piece of stream()) {
    for (let at = 0; at < piece.byteLength; ) {
      const take = Math.min(chunk_bytes - filled, piece.byteLength - at)
      chunk.set(piece.subarray(at, at + take), filled)
      filled += take
      at += take
      if (filled === chunk_bytes) {
        yield chunk
        chunk = takeBuffer(chunk_bytes)
        filled = 0
      }
    }
  }
  if (filled > 0) yield Buffer.from(chunk.subarray(0, filled))
}
