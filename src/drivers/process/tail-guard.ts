import { type FileHandle, open } from 'node:fs/promises'

/**
 * Bytes compared at each end of a file's previous content before only its growth is copied: the head
 * (a header or the meta pages a database rewrites on every commit: SQLite's page 1, LMDB's two) and
 * the last bytes of the old size (what a truncate-and-rewrite almost surely changes).
 */
export const GUARD_BYTES = 8192
/** Below this previous size a tail copy saves next to nothing: such a file is copied whole. */
export const MIN_TAIL_BASE_BYTES = 4 * GUARD_BYTES

async function readAt(handle: FileHandle, buffer: Buffer, position: number): Promise<number> {
  let done = 0
  while (done < buffer.length) {
    const { bytesRead } = await handle.read(buffer, done, buffer.length - done, position + done)
    if (bytesRead === 0) break
    done += bytesRead
  }
  return done
}

/**
 * Whether `live` still starts and ends its first `old_bytes` as `reference` (the previous copy, exactly
 * `old_bytes` long) does: the guard against taking a rewritten file for an appended one. It cannot see a
 * change between the two guarded ends; that is what the manifest's append_only promises never happens.
 */
export async function guardedEndsKept(live: string, reference: string, old_bytes: number): Promise<boolean> {
  if (old_bytes < MIN_TAIL_BASE_BYTES) return false
  let a: FileHandle | undefined
  let b: FileHandle | undefined
  try {
    a = await open(live, 'r')
    b = await open(reference, 'r')
    if ((await b.stat()).size !== old_bytes) return false
    const x = Buffer.allocUnsafe(GUARD_BYTES)
    const y = Buffer.allocUnsafe(GUARD_BYTES)
    for (const position of [0, old_bytes - GUARD_BYTES]) {
      if ((await readAt(a, x, position)) !== GUARD_BYTES) return false
      if ((await readAt(b, y, position)) !== GUARD_BYTES) return false
      if (!x.equals(y)) return false
    }
    return true
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false // copied whole, which sees ENOENT
    throw error
  } finally {
    await a?.close()
    await b?.close()
  }
}
