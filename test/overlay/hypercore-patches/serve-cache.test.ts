import type Hypercore from 'hypercore'
import { afterEach, beforeAll, describe, expect, it } from 'vitest'
import {
  installHypercorePatches,
  ServedBlocks,
  withoutPatch,
} from '../../../overlay/hypercore-patches/index.ts'
import { serveCache } from '../../../overlay/hypercore-patches/serve-cache.ts'
import { Cores } from './cores.ts'

const MiB = 1024 * 1024

/** A storage read that resolves when told to, counting how often it ran. */
function reader() {
  const calls: string[] = []
  const pending: (() => void)[] = []
  const read = (key: string, block: Buffer | null | Error) => () => {
    calls.push(key)
    return new Promise<Buffer | null>((resolve, reject) =>
      pending.push(() => (block instanceof Error ? reject(block) : resolve(block))),
    )
  }
  const settle = async () => {
    for (const done of pending.splice(0)) done()
    await new Promise((resolve) => setImmediate(resolve))
  }
  return { calls, read, settle }
}

describe('ServedBlocks (one storage read for a block several peers ask for)', () => {
  it('peers asking for the same block share one read, during it and after it', async () => {
    const cache = new ServedBlocks(4 * MiB)
    const r = reader()
    const block = Buffer.alloc(MiB, 7)
    const first = cache.get('0:5', r.read('0:5', block))
    const second = cache.get('0:5', r.read('0:5', block))
    await r.settle()
    expect(await first).toBe(block)
    expect(await second).toBe(block)
    expect(await cache.get('0:5', r.read('0:5', block))).toBe(block)
    expect(r.calls).toEqual(['0:5'])
    expect(cache.held_bytes).toBe(MiB)
  })

  it('holds at most its byte budget, dropping the oldest blocks first', async () => {
    const cache = new ServedBlocks(4 * MiB)
    const r = reader()
    for (let i = 0; i < 10; i++) {
      cache.get(`0:${i}`, r.read(`0:${i}`, Buffer.alloc(MiB)))
      await r.settle()
      expect(cache.held_bytes).toBeLessThanOrEqual(4 * MiB)
    }
    expect(cache.held_bytes).toBe(4 * MiB)
    cache.get('0:9', r.read('0:9', Buffer.alloc(MiB))) // newest: held
    cache.get('0:0', r.read('0:0', Buffer.alloc(MiB))) // oldest: read again
    await r.settle()
    expect(r.calls.slice(10)).toEqual(['0:0'])
  })

  it('a block larger than the budget is served but not kept', async () => {
    const cache = new ServedBlocks(4 * MiB)
    const r = reader()
    const big = Buffer.alloc(8 * MiB)
    const got = cache.get('0:1', r.read('0:1', big))
    await r.settle()
    expect(await got).toBe(big)
    cache.get('0:2', r.read('0:2', Buffer.alloc(MiB)))
    await r.settle()
    expect(cache.held_bytes).toBe(MiB)
  })

  it('a missing block or a failed read is not kept: the next ask reads again', async () => {
    const cache = new ServedBlocks(4 * MiB)
    const r = reader()
    const missing = cache.get('0:3', r.read('0:3', null))
    const failed = cache.get('0:4', r.read('0:4', new Error('io error')))
    await r.settle()
    expect(await missing).toBeNull()
    await expect(failed).rejects.toThrow('io error')
    cache.get('0:3', r.read('0:3', Buffer.alloc(10)))
    cache.get('0:4', r.read('0:4', Buffer.alloc(10)))
    await r.settle()
    expect(r.calls).toEqual(['0:3', '0:4', '0:3', '0:4'])
    expect(cache.held_bytes).toBe(20)
  })
})

const BLOCKS = 32
const READERS = 3

/**
 * READERS sparse readers each download the writer's BLOCKS blocks at once. Returns how many times the
 * writer read a block from its storage (hypercore-storage's read batch, spied on for the writer's core).
 */
async function writerReads(cores: Cores): Promise<number> {
  const blocks = Array.from({ length: BLOCKS }, (_, i) => Buffer.alloc(64 * 1024, i))
  await cores.writer.append(blocks)
  const storage = (
    cores.writer as unknown as { core: { storage: { read(): { destroy(): void }; core: object } } }
  ).core.storage
  const batch = storage.read()
  batch.destroy()
  const rx = Object.getPrototypeOf(batch) as { getBlock(this: { core: object }, i: number): unknown }
  const getBlock = rx.getBlock
  let reads = 0
  rx.getBlock = function (this: { core: object }, index: number) {
    if (this.core === storage.core) reads += 1
    return getBlock.call(this, index)
  }
  try {
    const readers: Hypercore[] = []
    for (let i = 0; i < READERS; i++) readers.push(await cores.reader(`reader-${i}`))
    for (const reader of readers) cores.link(cores.writer, reader)
    await Promise.all(readers.map((r) => r.download({ start: 0, end: BLOCKS }).done()))
    for (const reader of readers) {
      for (let i = 0; i < BLOCKS; i++) expect((await reader.get(i))!.equals(blocks[i]!)).toBe(true)
    }
  } finally {
    rx.getBlock = getBlock
  }
  return reads
}

describe('serve cache (overlay/hypercore-patches/serve-cache.ts) on real cores', () => {
  let cores: Cores | null = null
  beforeAll(() => installHypercorePatches())
  afterEach(async () => {
    await cores?.close()
    cores = null
  })

  it('with it, the writer reads each block once however many readers ask for it', async () => {
    cores = await Cores.open()
    expect(await writerReads(cores)).toBe(BLOCKS)
  })

  it('without it, the writer reads each block once per reader', async () => {
    cores = await Cores.open()
    const opened = cores
    expect(await withoutPatch(serveCache, () => writerReads(opened))).toBe(BLOCKS * READERS)
  })
})
