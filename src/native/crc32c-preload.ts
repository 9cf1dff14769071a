import { existsSync, readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

/** The hardware crc32c for RocksDB (rocksdb-crc32c.c), once built by build-crc32c.ts. */
export const CRC32C_LIBRARY = fileURLToPath(new URL('./build/rocksdb-crc32c.so', import.meta.url))

/** LD_PRELOAD's list: entries separated by spaces or colons. */
function entries(value: string | undefined): string[] {
  return (value ?? '').split(/[ :]/).filter(Boolean)
}

/** The library is x86-64 code for glibc's loader. */
export const CRC32C_PLATFORM = process.platform === 'linux' && process.arch === 'x64'

/** Why the library cannot be preloaded here, or null when it can. */
export function crc32cUnavailable(): string | null {
  if (!CRC32C_PLATFORM) return 'only built for Linux x86-64'
  if (/[ :]/.test(CRC32C_LIBRARY))
    return `LD_PRELOAD cannot name a path with a space or colon: ${CRC32C_LIBRARY}`
  if (!existsSync(CRC32C_LIBRARY)) return 'not built: run `npm run build:native` (needs a C compiler)'
  return null
}

export function crc32cAvailable(): boolean {
  return crc32cUnavailable() === null
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
