/**
 * Builds rocksdb-crc32c.so (see rocksdb-crc32c.c) into src/native/build/, run by `npm ci` (postinstall)
 * and `npm run build:native`. Without a C compiler, or off Linux x86-64, it says so and leaves nothing:
 * nodes then run with RocksDB's software crc32c (correct, ~13 % more CPU while replicating).
 */
import { execFile } from 'node:child_process'
import { mkdir, rename, rm } from 'node:fs/promises'
import { dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { CRC32C_LIBRARY, CRC32C_PLATFORM } from './crc32c-preload.ts'

const SOURCE = fileURLToPath(new URL('./rocksdb-crc32c.c', import.meta.url))

/** Compile the library (atomically: a temp file renamed into place). Returns why not, or null when built. */
export async function buildCrc32c(compiler = process.env['CC'] ?? 'cc'): Promise<string | null> {
  if (!CRC32C_PLATFORM) return `not Linux x86-64 (${process.platform} ${process.arch})`
  await mkdir(dirname(CRC32C_LIBRARY), { recursive: true })
  const temp = `${CRC32C_LIBRARY}.${process.pid}.tmp`
  try {
    await promisify(execFile)(compiler, ['-O2', '-shared', '-fPIC', '-Wall', '-Werror', '-o', temp, SOURCE])
    await rename(temp, CRC32C_LIBRARY)
    return null
  } catch (error) {
    await rm(temp, { force: true })
    const e = error as NodeJS.ErrnoException & { stderr?: string }
    return e.code === 'ENOENT'
      ? `no C compiler (${compiler})`
      : `${compiler} failed: ${e.stderr || e.message}`
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const why = await buildCrc32c()
  if (why === null) console.log(`sustain: built ${CRC32C_LIBRARY}`)
  else console.log(`sustain: hardware crc32c for RocksDB not built: ${why} (nodes use the software crc32c)`)
}
