import { join } from 'node:path'
import Hypercore from 'hypercore'
import { afterEach, beforeAll, describe, expect, it } from 'vitest'
import { installHypercorePatches, withoutPatch } from '../../../overlay/hypercore-patches/index.ts'
import { keepTreeNodes } from '../../../overlay/hypercore-patches/keep-tree-nodes.ts'
import { Cores } from './cores.ts'

const BLOCK_BYTES = 1024
const blocks = (count: number, first: number) =>
  Array.from({ length: count }, (_, i) => Buffer.alloc(BLOCK_BYTES, first + i))

/**
 * A reader saw the writer's core at length 6; the writer grew to 16 and garbage-collected one block
 * (7), then restarted. Can the reader upgrade to 16 and read a block past its old length?
 */
async function readerCatchesUp(cores: Cores): Promise<{ length: number; block: Buffer | string }> {
  const reader = await cores.reader('reader')
  await cores.writer.append(blocks(6, 0))
  const first = cores.link(cores.writer, reader)
  await reader.update({ wait: true })
  expect(reader.length).toBe(6)
  cores.unlink(first)
  await cores.writer.append(blocks(10, 6))
  await cores.writer.clear(7, 8)
  // A restart drops hypercore's in-memory tree cache: what is left is what storage kept.
  await cores.writer.close()
  const writer = await cores.add(new Hypercore(join(cores.dir, 'writer')))
  cores.link(writer, reader)
  const block = await reader.get(12, { timeout: 3000 }).then(
    (b) => b ?? 'null',
    (error: Error) => error.message,
  )
  return { length: reader.length, block }
}

describe('keep-tree-nodes (overlay/hypercore-patches/keep-tree-nodes.ts)', () => {
  let cores: Cores | null = null
  beforeAll(() => installHypercorePatches())
  afterEach(async () => {
    await cores?.close()
    cores = null
  })

  it('with it, a reader that knew an older length upgrades past a garbage-collected block', async () => {
    cores = await Cores.open()
    const { length, block } = await readerCatchesUp(cores)
    expect(length).toBe(16)
    expect(block).toEqual(blocks(1, 12)[0])
  })

  it('without it, the writer lost the tree nodes of the proof: the reader never gets past its old length', async () => {
    cores = await Cores.open()
    const opened = cores
    const { length, block } = await withoutPatch(keepTreeNodes, () => readerCatchesUp(opened))
    expect(length).toBe(6)
    expect(block).toMatch(/timeout|timed out/i)
  })
})
