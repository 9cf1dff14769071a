import { existsSync, readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

/** The hardware crc32c for RocksDB (rocksdb-crc32c.c), once built by build-crc32c.ts. */
export const CRC32C_LIBRARY = fileURLToPath(new URL('./build/rocksdb-crc32c.so', import.meta.url))

/** LD_PRELOAD's list: entries separated by spaces or colons. */
function entries(value: string | undefined): string[] {
  return (value ?? '').split(/[ :]/).filter(Boolean)
}

/** Whether the library is built and can be preloaded (LD_PRELOAD cannot name a path with a space or colon). */
export function crc32cAvailable(): boolean {
  return !/[ :]/.test(CRC32C_LIBRARY) && existsSync(CRC32C_LIBRARY)
}

/** `env` with the library added to LD_PRELOAD (kept first: other entries stay), when it is available. */
export function withCrc32c(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const present = entries(env['LD_PRELOAD'])
  if (!crc32cAvailable() || present.includes(CRC32C_LIBRARY)) return { ...env }
  return { ...env, LD_PRELOAD: [CRC32C_LIBRARY, ...present].join(':') }
}

/** Whether this process has the library loaded (it then serves RocksDB's crc32c). */
export function crc32cActive(maps_path = '/proc/self/maps'): boolean {
  try {
    return readFileSync(maps_path, 'utf8').includes(CRC32C_LIBRARY)
  } catch {
    return false
  }
}
