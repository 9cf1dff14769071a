import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import net from 'node:net'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { FrameKind } from '../../overlay/frames.ts'
import { identityFromSeed } from '../../overlay/keys.ts'
import { type LocalTestnet, startTestnet } from '../../overlay/testnet.ts'
import { Cluster, type NodeProc, withTimeout } from './harness.ts'
import { Intruder } from './intruder.ts'

const MiB = 1024 * 1024

/** Both ends of every pair: their data connections by transport. */
async function transports(nodes: NodeProc[]): Promise<{ lane: number; plane: number }[]> {
  return Promise.all(nodes.map(async (n) => (await n.request('stats')).data_transports))
}

async function replicate(server: NodeProc, candidates: NodeProc[], id: string, size_bytes: number) {
  const published = await server.request('publish', { id, size_bytes }, 60_000)
  await Promise.all(
    candidates.map((c) => c.waitFor((e) => e.event === 'snapshot-held' && e.id === id, 60_000, `${id} held`)),
  )
  for (const c of candidates) {
    const got = await c.request('collect', { writer: server.key, id }, 60_000)
    expect(got.digest).toBe(published.digest)
  }
}

describe('data lane (direct TCP between members; processes on a local testnet)', () => {
  let testnet: LocalTestnet
  let cluster: Cluster | null = null

  beforeAll(async () => {
    testnet = await startTestnet(5)
  })
  afterEach(async () => {
    await cluster?.cleanup()
    cluster = null
  })
  afterAll(async () => {
    await testnet?.destroy()
  })

  it('carries the snapshot data between members whose lanes are reachable', async () => {
    cluster = await Cluster.create(testnet.bootstrap)
    const nodes = [cluster.spawn('server', { priority: 100 }), cluster.spawn('c1'), cluster.spawn('c2')]
    await cluster.ready(nodes)
    await cluster.meshed(nodes)
    await replicate(nodes[0]!, nodes.slice(1), 'on-lane', 8 * MiB)
    // Every pair's data connection is a lane: none left on the hyperswarm data plane.
    expect(await transports(nodes)).toEqual(nodes.map(() => ({ lane: 2, plane: 0 })))
  })

  it('falls back to the hyperswarm data plane when a lane does not answer', async () => {
    // A port that accepts TCP and never speaks: every lane dial waits out its handshake timeout.
    const silent = net.createServer(() => {})
    const sockets = new Set<net.Socket>()
    silent.on('connection', (s) => sockets.add(s.on('error', () => {})))
    silent.listen(0, '127.0.0.1')
    await once(silent, 'listening')
    const dead_port = (silent.address() as net.AddressInfo).port
    try {
      cluster = await Cluster.create(testnet.bootstrap)
      const nodes = [
        cluster.spawn('server', { priority: 100, lane_advertised_port: dead_port }),
        cluster.spawn('c1', { lane_advertised_port: dead_port }),
      ]
      await cluster.ready(nodes)
      await cluster.meshed(nodes)
      await replicate(nodes[0]!, nodes.slice(1), 'no-lane', 8 * MiB)
      // The dialler's lane attempt reached the silent port and gave up.
      await withTimeout(
        (async () => {
          while (sockets.size === 0) await once(silent, 'connection')
        })(),
        10_000,
        'a lane dial to the silent port',
      )
      expect(await transports(nodes)).toEqual([
        { lane: 0, plane: 1 },
        { lane: 0, plane: 1 },
      ])
    } finally {
      for (const s of sockets) s.destroy()
      silent.close()
    }
  })

  it('a lane the greater key cannot reach is dialled from the other side', async () => {
    // A port that refuses: the greater key's dials to the smaller key's advertised port all fail, as
    // for a node behind a NAT without a forward; the smaller key can still reach the greater's lane.
    const closed = net.createServer()
    closed.listen(0, '127.0.0.1')
    await once(closed, 'listening')
    const dead_port = (closed.address() as net.AddressInfo).port
    await new Promise((resolve) => closed.close(resolve))
    const seeds = [randomBytes(32), randomBytes(32)].sort((a, b) =>
      identityFromSeed(a)
        .publicKey.toString('hex')
        .localeCompare(identityFromSeed(b).publicKey.toString('hex')),
    )
    cluster = await Cluster.create(testnet.bootstrap)
    const smaller = cluster.spawn('smaller', {
      seed: seeds[0]!.toString('hex'),
      lane_advertised_port: dead_port,
    })
    const greater = cluster.spawn('greater', { seed: seeds[1]!.toString('hex'), priority: 100 })
    await cluster.ready([smaller, greater])
    expect(smaller.key < greater.key).toBe(true)
    await cluster.meshed([smaller, greater])
    await Promise.all([smaller.laneTo(greater), greater.laneTo(smaller)])
    await replicate(greater, [smaller], 'reverse-lane', 4 * MiB)
    expect(await transports([smaller, greater])).toEqual([
      { lane: 1, plane: 0 },
      { lane: 1, plane: 0 },
    ])
  })

  it('refuses outsiders and garbage on its lane port; its members are unaffected', async () => {
    cluster = await Cluster.create(testnet.bootstrap)
    const nodes = [cluster.spawn('server', { priority: 100 }), cluster.spawn('c1')]
    await cluster.ready(nodes)
    await cluster.meshed(nodes)
    const server = nodes[0]!
    const ready = server.events.find((e) => e.event === 'ready')!
    const lane_port = ready['lane_port'] as number
    expect(lane_port).toBeGreaterThan(0)
    await server.request('publish', { id: 'before', size_bytes: 2 * MiB }, 60_000)

    // Bytes that are no Noise handshake: each connection is closed (by the handshake timeout at the
    // latest), the node goes on.
    await Promise.all(
      Array.from({ length: 20 }, async (_, i) => {
        const socket = net.connect({ host: '127.0.0.1', port: lane_port })
        socket.on('error', () => {})
        await once(socket, 'connect')
        socket.write(randomBytes(1 + Math.floor(Math.random() * 70_000)))
        await withTimeout(once(socket, 'close'), 10_000, `garbage connection ${i} closed`)
      }),
    )

    const intruders = [
      new Intruder(testnet.bootstrap, join(cluster.dir, 'lane-proof'), 'bad-proof'),
      new Intruder(testnet.bootstrap, join(cluster.dir, 'lane-silent'), 'silent'),
    ]
    try {
      for (const x of intruders) {
        await x.join([], [server.key])
        await x.dialLane('127.0.0.1', lane_port)
        await server.waitFor(
          (e) => e.event === 'admission-refused' && e.key === x.swarm.keyPair.publicKey.toString('hex'),
          10_000,
          `refuse ${x.mode} on the lane`,
        )
        await withTimeout(x.closedBy(1), 5000, `${x.mode}: lane closed`)
        // At most the member's own admit (its proof), never snapshot blocks.
        expect(x.connections[0]!.frames.filter((k) => k !== FrameKind.Admit)).toEqual([])
        expect(x.blocks_received).toBe(0)
      }
    } finally {
      for (const x of intruders) await x.close()
    }
    // The member kept its peer and still replicates to it over the lane.
    await replicate(server, nodes.slice(1), 'after', 2 * MiB)
    expect(await transports(nodes)).toEqual([
      { lane: 1, plane: 0 },
      { lane: 1, plane: 0 },
    ])
    expect(server.events.filter((e) => e.event === 'peer-down')).toEqual([])
  })
})
