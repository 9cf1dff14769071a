import { open } from 'node:fs/promises'

/**
 * Recycled chunk buffers. Chunks move between threads by transfer; if each read allocated a fresh
 * buffer, every thread would hold its share of not-yet-collected garbage (measured: RSS ~+130 MiB on a
 * 1 GiB image). Buffers come back from the workers and are reused, so memory stays flat.
 */
const MAX_FREE_BYTES = 8 * 1024 * 1024
const MIN_POOLED_BYTES = 64 * 1024
const free = new Map<number, ArrayBuffer[]>()
let freeBytes = 0

/** A buffer of exactly `size` bytes that owns its whole ArrayBuffer (so it can be transferred). */
export function takeBuffer(size: number): Buffer {
  const list = free.get(size)
  const recycled = list?.pop()
  if (recycled) {
    freeBytes -= size
    return Buffer.from(recycled)
  }
  if (size >= MIN_POOLED_BYTES && !free.has(size)) free.set(size, [])
  return Buffer.allocUnsafeSlow(size)
}

/** Give a buffer back once nothing reads it any more. Ignored unless it is a whole pooled-size buffer. */
export function recycle(view: Uint8Array | undefined): void {
  if (!view || !(view.buffer instanceof ArrayBuffer)) return
  const size = view.buffer.byteLength
  const list = free.get(size)
  if (!list || view.byteOffset !== 0 || view.byteLength !== size || freeBytes + size > MAX_FREE_BYTES) return
  list.push(view.buffer)
  freeBytes += size
}

/** Read a whole file into a recyclable buffer; undefined when it does not exist. */
export async function readWholeFile(path: string): Promise<Buffer | undefined> {
  let handle: Awaited<ReturnType<typeof open>>
  try {
    handle = await open(path, 'r')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw error
  }
  try {
    const { size } = await handle.stat()
    const bytes = takeBuffer(size)
    await readFully(handle, bytes, 0)
    return bytes
  } finally {
    await handle.close()
  }
}

/** Fill `bytes` from `position` on; returns how many bytes there were (less at end of file). */
export async function readFully(
  handle: Awaited<ReturnType<typeof open>>,
  bytes: Uint8Array,
  position: number,
): Promise<number> {
  let filled = 0
  while (filled < bytes.byteLength) {
    const { bytesRead } = await handle.read(bytes, filled, bytes.byteLength - filled, position + filled)
    if (bytesRead === 0) break
    filled += bytesRead
  }
  return filled
}
