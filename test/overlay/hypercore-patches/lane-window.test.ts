import { once } from 'node:events'
import { mkdtemp, rm } from 'node:fs/promises'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import SecretStream from '@hyperswarm/secret-stream'
import Hypercore from 'hypercore'
import { afterEach, beforeAll, describe, expect, it } from 'vitest'
import {
  installHypercorePatches,
  LANE_INFLIGHT_BLOCKS,
  withoutPatch,
} from '../../../overlay/hypercore-patches/index.ts'
import { laneWindow } from '../../../overlay/hypercore-patches/lane-window.ts'

const BLOCKS = 64
const BLOCK_BYTES = 256 * 1024

interface Peer {
  inflight: number
  getMaxInflight(): number
}

/** A writer core of BLOCKS blocks and an empty reader of it, in fresh storage. */
async function cores(dir: string) {
  const writer = new Hypercore(join(dir, 'w'))
  await writer.ready()
  const blocks = Array.from({ length: BLOCKS }, (_, i) => Buffer.alloc(BLOCK_BYTES, i))
  await writer.append(blocks)
  const reader = new Hypercore(join(dir, 'r'), writer.key)
  await reader.ready()
  return { writer, reader, blocks }
}

/** Download everything, recording the most requests the reader had in flight to its one peer. */
async function download(reader: Hypercore) {
  if (reader.peers.length === 0) await once(reader, 'peer-add')
  const peer = (reader as unknown as { replicator: { peers: Peer[] } }).replicator.peers[0]!
  let most = 0
  reader.on('download', () => (most = Math.max(most, peer.inflight)))
  await reader.download({ start: 0, end: BLOCKS }).done()
  return { most, max: peer.getMaxInflight() }
}

/** Download everything over a real loopback TCP connection wrapped in secret streams (a lane). */
async function overLane(dir: string, cleanups: (() => Promise<void>)[]) {
  const { writer, reader, blocks } = await cores(dir)
  const server = net.createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const accepted = once(server, 'connection') as Promise<[net.Socket]>
  const socket = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1')
  const [remote] = await accepted
  const a = new SecretStream(true, socket)
  const b = new SecretStream(false, remote)
  cleanups.push(async () => {
    a.destroy()
    b.destroy()
    server.close()
    await Promise.all([writer.close(), reader.close()])
    await rm(dir, { recursive: true, force: true })
  })
  writer.replicate(a)
  reader.replicate(b)
  return { ...(await download(reader)), reader, blocks }
}

describe('lane window (overlay/hypercore-patches/lane-window.ts)', () => {
  const cleanups: (() => Promise<void>)[] = []
  beforeAll(() => installHypercorePatches())
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0)) await cleanup()
  })

  it('a reader on a TCP lane keeps at most LANE_INFLIGHT_BLOCKS requested, and gets every block', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sustain-lane-window-'))
    const { most, max, reader, blocks } = await overLane(dir, cleanups)
    expect(max).toBe(LANE_INFLIGHT_BLOCKS)
    expect(most).toBeGreaterThan(1) // requests did overlap...
    expect(most).toBeLessThanOrEqual(LANE_INFLIGHT_BLOCKS) // ...within the window (hypercore's own: 48)
    for (let i = 0; i < BLOCKS; i++) expect((await reader.get(i))!.equals(blocks[i]!)).toBe(true)
  })

  it("without it, a TCP lane gets hypercore's window of 48 blocks", async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sustain-lane-window-'))
    const { max } = await withoutPatch(laneWindow, () => overLane(dir, cleanups))
    expect(max).toBe(48)
  })

  it("any other stream keeps hypercore's own window", async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sustain-lane-window-'))
    const { writer, reader } = await cores(dir)
    const a = writer.replicate(true)
    const b = reader.replicate(false)
    a.pipe(b).pipe(a)
    cleanups.push(async () => {
      a.destroy()
      b.destroy()
      await Promise.all([writer.close(), reader.close()])
      await rm(dir, { recursive: true, force: true })
    })
    const { max } = await download(reader)
    expect(max).toBe(48)
  })
})
