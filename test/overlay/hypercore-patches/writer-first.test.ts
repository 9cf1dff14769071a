import SecretStream from '@hyperswarm/secret-stream'
import type Hypercore from 'hypercore'
import { afterEach, beforeAll, describe, expect, it } from 'vitest'
import { installHypercorePatches, WriterFirst } from '../../../overlay/hypercore-patches/index.ts'
import { Cores } from './cores.ts'

const BLOCKS = 64
const BLOCK_BYTES = 16 * 1024
type KeyPair = { publicKey: Buffer; secretKey: Buffer }
const keyPair = (): KeyPair => (SecretStream as unknown as { keyPair(): KeyPair }).keyPair()

/**
 * The writer and a candidate that already holds every block both serve a second candidate, which
 * downloads everything (with or without the writer-first policy). Returns where its blocks came from.
 */
async function sources(cores: Cores, policy: boolean): Promise<{ writer: number; other: number }> {
  const writerKeys = keyPair()
  const blocks = Array.from({ length: BLOCKS }, (_, i) => Buffer.alloc(BLOCK_BYTES, i))
  await cores.writer.append(blocks)
  const holder = await cores.reader('holder')
  cores.link(cores.writer, holder, { a: writerKeys })
  await holder.download({ start: 0, end: BLOCKS }).done()
  const candidate = await cores.reader('candidate')
  const from = { writer: 0, other: 0 }
  candidate.on('download', (_index: number, _bytes: number, peer: { remotePublicKey: Buffer }) => {
    if (peer.remotePublicKey.equals(writerKeys.publicKey)) from.writer += 1
    else from.other += 1
  })
  const disabled: unknown[] = []
  const writerFirst = policy
    ? new WriterFirst(candidate as Hypercore, {
        writer: writerKeys.publicKey.toString('hex'),
        stall_ms: 30_000,
        urgent_stall_ms: 30_000,
        wanting: () => true,
        onDisabled: (error) => disabled.push(error),
      })
    : null
  cores.link(holder, candidate)
  cores.link(cores.writer, candidate, { a: writerKeys })
  // Both peers known before any request: otherwise the first to connect would get them all anyway.
  while (candidate.peers.length < 2) await new Promise((resolve) => candidate.once('peer-add', resolve))
  await candidate.update({ wait: true })
  await candidate.download({ start: 0, end: BLOCKS }).done()
  writerFirst?.close()
  expect(disabled).toEqual([])
  for (let i = 0; i < BLOCKS; i++) expect((await candidate.get(i))!.equals(blocks[i]!)).toBe(true)
  return from
}

describe('writer-first (overlay/hypercore-patches/writer-first.ts) on real cores', () => {
  let cores: Cores | null = null
  beforeAll(() => installHypercorePatches())
  afterEach(async () => {
    await cores?.close()
    cores = null
  })

  it('with it, a candidate takes every block from the connected writer, none from another holder', async () => {
    cores = await Cores.open()
    expect(await sources(cores, true)).toEqual({ writer: BLOCKS, other: 0 })
  })

  it('without it, hypercore spreads the requests: the other holder serves blocks too', async () => {
    cores = await Cores.open()
    const from = await sources(cores, false)
    expect(from.other).toBeGreaterThan(0)
    // (Often more than BLOCKS transfers in all: hotswap re-requests in-flight blocks from the idle peer.)
    expect(from.writer + from.other).toBeGreaterThanOrEqual(BLOCKS)
  })
})
