import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { afterEach, beforeAll, describe, expect, it } from 'vitest'
import { CRC32C_LIBRARY, crc32cAvailable, withCrc32c } from '../../src/native/crc32c-preload.ts'
import { requireTools } from '../system/requirements.ts'

const FIXTURE = new URL('./fixtures/core-io.ts', import.meta.url).pathname
const { LD_PRELOAD: _, ...plain } = process.env

/** Run the fixture with or without the library; resolves with its first line (JSON) and the process. */
async function run(dir: string, args: string[], shim: boolean, extra: NodeJS.ProcessEnv = {}) {
  const env = { ...(shim ? withCrc32c(plain) : plain), ...extra }
  const child = spawn(process.execPath, ['--import', 'tsx', FIXTURE, dir, ...args], {
    env,
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  const line = once(createInterface({ input: child.stdout! }), 'line') as Promise<[string]>
  const early = once(child, 'exit').then(([code, signal]) => {
    throw new Error(`core-io ${args.join(' ')} exited (${code ?? signal}) before answering`)
  })
  early.catch(() => {}) // the child exits (or is killed) later in every test: only the race may see it
  const [text] = await Promise.race([line, early])
  return { child, out: JSON.parse(text) as { hashes?: string[]; error?: string; crc32c_active?: boolean } }
}

async function exited(child: ChildProcess) {
  if (child.exitCode === null && child.signalCode === null) await once(child, 'exit')
}

/** Write 72 MiB and close (blob files, tables), reopen, write 8 MiB more and be killed (WAL only). */
async function writeBoth(dir: string, shim: boolean): Promise<string[]> {
  const first = await run(dir, ['write', '72', 'close'], shim)
  expect(first.out.crc32c_active).toBe(shim)
  await exited(first.child)
  const second = await run(dir, ['write', '8', 'hold'], shim)
  second.child.kill('SIGKILL')
  await exited(second.child)
  return [...first.out.hashes!, ...second.out.hashes!]
}

describe('hardware crc32c for RocksDB (src/native)', () => {
  beforeAll(() => requireTools('cc', 'crc32c')) // built by npm ci when a C compiler was there
  const dirs: string[] = []
  afterEach(async () => {
    for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true })
  })
  const fresh = async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sustain-crc32c-'))
    dirs.push(dir)
    return dir
  }

  it("is built by npm ci, and preloaded it takes over rocksdb-native's crc32c", async () => {
    expect(crc32cAvailable()).toBe(true)
    const dir = await fresh()
    const debug = await fresh()
    const { child } = await run(join(dir, 'core'), ['write', '1', 'close'], true, {
      LD_DEBUG: 'bindings',
      LD_DEBUG_OUTPUT: join(debug, 'ld'),
    })
    await exited(child)
    const logs = await Promise.all((await readdir(debug)).map((f) => readFile(join(debug, f), 'utf8')))
    const binding = logs
      .join('\n')
      .split('\n')
      .find((line) => line.includes('_ZN7rocksdb6crc32c6ExtendEjPKcm'))
    expect(binding).toContain('rocksdb-native.node')
    expect(binding).toContain(`to ${CRC32C_LIBRARY}`)
  })

  for (const shim of [true, false]) {
    it(`data written ${shim ? 'with' : 'without'} it reads back ${shim ? 'without' : 'with'} it: tables, blob files and a write-ahead log left by a kill`, async () => {
      const dir = join(await fresh(), 'core')
      const written = await writeBoth(dir, shim)
      expect(written).toHaveLength(80)
      const read = await run(dir, ['read'], !shim)
      await exited(read.child)
      expect(read.out.error).toBeUndefined()
      expect(read.out.hashes).toEqual(written)
    })
  }
})
