import { type ChildProcess, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { createWriteStream } from 'node:fs'
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { connect, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { awaitMemoryFile, memorySinkUri } from '../../src/drivers/qemu/memory-sink.ts'
import { encodeStream, MEMORY_DEVICES_FILE, splitStream } from '../../src/drivers/qemu/page-image.ts'
import { QmpClient } from '../../src/drivers/qemu/qmp.ts'
import { waitMigration } from '../../src/drivers/qemu/wait-migration.ts'

/**
 * Issue 21: guest memory stored as a page image. Real QEMU 7.2 streams, from a guest without a kernel
 * (the firmware only: no TCG boot to wait for), with 1 MiB of random bytes loaded at 2 MiB: the stream
 * splits into block files and a device part, encodes back into a stream a second QEMU's `-incoming`
 * accepts, and that QEMU's memory is the first one's, byte for byte.
 */

const PATTERN_AT = 2 * 1024 * 1024
const PATTERN_BYTES = 1024 * 1024
const MEMORY_BYTES = 16 * 1024 * 1024

interface Bare {
  qmp: QmpClient
  child: ChildProcess
  exited: () => boolean
  stop: () => Promise<void>
}

const started: Bare[] = []
let dir: string
let pattern: Buffer
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sustain-page-image-'))
  pattern = randomBytes(PATTERN_BYTES)
  await writeFile(join(dir, 'pattern.bin'), pattern)
  await writeFile(join(dir, 'zeros.bin'), Buffer.alloc(PATTERN_BYTES))
})
afterAll(async () => {
  for (const q of started) await q.stop()
  if (dir) await rm(dir, { recursive: true, force: true })
})

/** A firmware-only QEMU (same machine and devices each time: a stream needs the same layout). */
async function bareQemu(name: string, load: string, extra: string[]): Promise<Bare> {
  const qmp_socket = join(dir, `${name}.qmp`)
  const child = spawn(
    'qemu-system-x86_64',
    [
      ...['-M', 'pc', '-m', '16', '-nodefaults', '-display', 'none', '-accel', 'tcg'],
      ...['-qmp', `unix:${qmp_socket},server=on,wait=off`],
      ...['-device', `loader,file=${join(dir, load)},addr=${PATTERN_AT},force-raw=on`],
      ...extra,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  )
  let gone = false
  const exit = new Promise<void>((ok) =>
    child.once('exit', () => {
      gone = true
      ok()
    }),
  )
  const qmp = await QmpClient.connect(qmp_socket, 30_000, () => gone)
  const bare: Bare = {
    qmp,
    child,
    exited: () => gone,
    stop: async () => {
      if (!gone) child.kill('SIGKILL')
      await exit
    },
  }
  started.push(bare)
  return bare
}

async function capture(q: Bare, name: string): Promise<string> {
  const path = join(dir, name)
  await q.qmp.execute('migrate-set-parameters', { 'max-bandwidth': 64 * 1024 * 1024 * 1024 })
  await q.qmp.execute('migrate', { uri: memorySinkUri(path) })
  await waitMigration(q.qmp)
  await awaitMemoryFile(path)
  return path
}

async function memoryOf(q: Bare, name: string): Promise<Buffer> {
  const path = join(dir, name)
  await q.qmp.execute('pmemsave', { val: 0, size: MEMORY_BYTES, filename: path })
  return readFile(path)
}

/** Starts a QEMU waiting for a stream on a socket, sends the page image's encoding, waits until read. */
async function restore(image: string, name: string): Promise<Bare> {
  const socket_path = join(dir, `${name}.in`)
  const q = await bareQemu(name, 'zeros.bin', ['-incoming', `unix:${socket_path}`])
  const socket = await new Promise<Socket>((ok, fail) => {
    const s = connect(socket_path)
    s.once('connect', () => ok(s))
    s.once('error', fail)
  })
  await pipeline(Readable.from(encodeStream(image)), socket)
  for (let i = 0; i < 3000; i++) {
    const { status } = await q.qmp.execute<{ status: string }>('query-status')
    if (status !== 'inmigrate') break
    await new Promise((ok) => setTimeout(ok, 10))
  }
  return q
}

describe('page image of a QEMU 7.2 migration stream', () => {
  it('a stopped guest: split, encoded back, restored: the same memory byte for byte', async () => {
    const source = await bareQemu('stopped', 'pattern.bin', ['-S'])
    const stream = await capture(source, 'stopped.stream')
    const image = join(dir, 'stopped.image')
    await mkdir(image)
    const split = await splitStream(stream, image)
    expect(split.blocks[0]).toMatchObject({ id: 'pc.ram', length_bytes: MEMORY_BYTES })
    // Every page of every block is in the stream; most of a fresh guest's are zero.
    const all_pages = split.blocks.reduce((n, b) => n + b.length_bytes / 4096, 0)
    expect(split.pages).toBe(all_pages)
    expect(split.zero_pages).toBeGreaterThan(all_pages / 2)
    const ram = await readFile(join(image, split.blocks[0]!.file))
    expect(ram.subarray(PATTERN_AT, PATTERN_AT + PATTERN_BYTES).equals(pattern)).toBe(true)

    const source_memory = await memoryOf(source, 'stopped.src.mem')
    const target = await restore(image, 'stopped-restored')
    expect(target.exited()).toBe(false)
    const { status } = await target.qmp.execute<{ status: string }>('query-status')
    expect(status).not.toBe('inmigrate')
    const target_memory = await memoryOf(target, 'stopped.dst.mem')
    expect(target_memory.subarray(PATTERN_AT, PATTERN_AT + PATTERN_BYTES).equals(pattern)).toBe(true)
    expect(target_memory.equals(source_memory)).toBe(true)
    await source.stop()
    await target.stop()
  })

  it('a background snapshot of a running guest: pages out of order land at their offsets; encode and split again is the same image', async () => {
    const source = await bareQemu('running', 'pattern.bin', [])
    await source.qmp.execute('migrate-set-capabilities', {
      capabilities: [{ capability: 'background-snapshot', state: true }],
    })
    const stream = await capture(source, 'running.stream')
    await source.stop()
    const image = join(dir, 'running.image')
    await mkdir(image)
    const split = await splitStream(stream, image)
    const ram = await readFile(join(image, split.blocks[0]!.file))
    expect(ram.subarray(PATTERN_AT, PATTERN_AT + PATTERN_BYTES).equals(pattern)).toBe(true)

    // The encoding is a stream the splitter reads back into the same files.
    const encoded = join(dir, 'running.encoded')
    await pipeline(Readable.from(encodeStream(image)), createWriteStream(encoded))
    const again = join(dir, 'running.again')
    await mkdir(again)
    await splitStream(encoded, again)
    const names = (await readdir(image)).sort()
    expect((await readdir(again)).sort()).toEqual(names)
    expect(names).toContain(MEMORY_DEVICES_FILE)
    for (const name of names)
      expect((await readFile(join(again, name))).equals(await readFile(join(image, name))), name).toBe(true)

    const target = await restore(image, 'running-restored')
    expect(target.exited()).toBe(false)
    await target.qmp.execute('cont')
    const { status } = await target.qmp.execute<{ status: string }>('query-status')
    expect(status).toBe('running')
    const memory = await memoryOf(target, 'running.dst.mem')
    expect(memory.subarray(PATTERN_AT, PATTERN_AT + PATTERN_BYTES).equals(pattern)).toBe(true)
    await target.stop()
  })

  it('refuses what is not a migration stream, leaving no partial image', async () => {
    await writeFile(join(dir, 'junk.stream'), randomBytes(4096))
    const image = join(dir, 'junk.image')
    await mkdir(image)
    await expect(splitStream(join(dir, 'junk.stream'), image)).rejects.toThrow(/not a QEMU migration stream/)
    expect(await readdir(image)).toEqual([])
  })
})
