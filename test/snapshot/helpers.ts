import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type CodecPool, createCodecPool } from '../../snapshot/codec-pool.ts'
import { type RebasePolicy, SnapshotEngine } from '../../snapshot/engine.ts'
import { SnapshotStore } from '../../snapshot/store.ts'

/** Deterministic bytes (xorshift32), so a failing case replays exactly. */
export function seededBytes(seed: number, length: number): Buffer {
  const out = Buffer.allocUnsafe(length)
  let x = seed >>> 0 || 0x9e3779b9
  let i = 0
  for (; i + 4 <= length; i += 4) {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    out.writeUInt32LE(x >>> 0, i)
  }
  for (; i < length; i++) {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    out[i] = x & 0xff
  }
  return out
}

/**
 * 1 MiB of a 16-symbol alphabet: every position matches somewhere, so xdelta3-wasm's instruction buffer
 * outgrows its fixed 16 MiB heap (ENOMEM), against a base chunk of the same kind or against nothing.
 * Found by probing: 2, 4 and 16 symbols fail at 1 MiB, 16 symbols pass at 768 KiB.
 */
export function refusedChunk(seed: number): Buffer {
  const out = seededBytes(seed, 1 << 20)
  for (let i = 0; i < out.length; i++) out[i]! &= 0x0f
  return out
}

/** Overwrite `count` distinct 4 KiB pages chosen by `seed` with new bytes. */
export function changePages(image: Buffer, seed: number, count: number): Buffer {
  const out = Buffer.from(image)
  const pages = Math.floor(out.length / 4096)
  const picks = seededBytes(seed, count * 4)
  for (let i = 0; i < count && pages > 0; i++) {
    const page = picks.readUInt32LE(i * 4) % pages
    seededBytes(seed + i + 1, 4096).copy(out, page * 4096)
  }
  return out
}

export interface Fixture {
  dir: string
  pool: CodecPool
  store: SnapshotStore
  engine: SnapshotEngine
  write(name: string, bytes: Uint8Array): Promise<string>
  cleanup(): Promise<void>
}

export const NODE = 'ab'.repeat(32)

export async function fixture(
  options: {
    threads?: number
    chunk_bytes?: number
    retain_newest?: number
    rebase?: Partial<RebasePolicy>
  } = {},
): Promise<Fixture> {
  const dir = await mkdtemp(join(tmpdir(), 'sustain-snapshot-'))
  const pool = createCodecPool({ threads: options.threads ?? 2 })
  const store = await SnapshotStore.open(join(dir, 'store'), pool)
  const engine = new SnapshotEngine({
    store,
    node: NODE,
    ...(options.chunk_bytes ? { chunk_bytes: options.chunk_bytes } : {}),
    ...(options.retain_newest ? { retain_newest: options.retain_newest } : {}),
    ...(options.rebase ? { rebase: options.rebase } : {}),
  })
  return {
    dir,
    pool,
    store,
    engine,
    async write(name, bytes) {
      const path = join(dir, name)
      await writeFile(path, bytes)
      return path
    },
    async cleanup() {
      await pool.close()
      await rm(dir, { recursive: true, force: true })
    },
  }
}
