import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { FrameKind } from '../../overlay/frames.ts'
import { deriveControlTopic, deriveTopic } from '../../overlay/keys.ts'
import type { PeerTableView } from '../../overlay/peer-table.ts'
import { type LocalTestnet, startTestnet } from '../../overlay/testnet.ts'
import { Cluster, type NodeProc, withTimeout } from './harness.ts'
import { Intruder } from './intruder.ts'

describe('overlay membership (5 processes on a local testnet)', () => {
  let testnet: LocalTestnet
  let cluster: Cluster
  let nodes: NodeProc[]

  beforeAll(async () => {
    testnet = await startTestnet(5)
    cluster = await Cluster.create(testnet.bootstrap)
    nodes = [0, 1, 2, 3, 4].map((i) => cluster.spawn(`n${i}`, { priority: 10 * i }))
    await cluster.ready(nodes)
  })

  afterAll(async () => {
    await cluster?.cleanup()
    await testnet?.destroy()
  })

  it('5 nodes join and agree on the peer table', async () => {
    await cluster.meshed(nodes)
    await nodes[2]!.request('state', { state: { role: 'server', term: 3 } })
    // Every node learns n2's role from its pings; wait for that, then compare the tables.
    const tables = await Promise.all(
      nodes.map(async (n) => {
        for (let i = 0; i < 100; i++) {
          const view = await n.request<PeerTableView>('peers')
          if (view.server === nodes[2]!.key) return view
          await n.waitFor(() => false, 50, 'poll').catch(() => {})
        }
        throw new Error(`${n.name} never saw the server`)
      }),
    )
    for (const [i, view] of tables.entries()) {
      const expected = nodes.filter((_, j) => j !== i)
      expect(view.reachable.map((p) => p.key).sort()).toEqual(expected.map((n) => n.key).sort())
      expect(view.unreachable).toEqual([])
      for (const peer of view.reachable) {
        const node = nodes.find((n) => n.key === peer.key)!
        expect(peer.name).toBe(node.name)
        expect(peer.priority).toBe(node.config.priority)
        expect(peer.role).toBe(node === nodes[2] ? 'server' : 'candidate')
      }
    }
  })

  it('control messages reach every admitted peer', async () => {
    const since = nodes.map((n) => n.events.length)
    const sent = await nodes[0]!.request<number>('broadcast', { msg: { type: 'hello-all', n: 1 } })
    expect(sent).toBe(4)
    await Promise.all(
      nodes
        .slice(1)
        .map((n, i) =>
          n.waitFor(
            (e) => e.event === 'message' && e.from === nodes[0]!.key && e.msg.type === 'hello-all',
            5000,
            'message',
            since[i + 1],
          ),
        ),
    )
  })

  it('a node with the wrong secret is refused within a second and reads nothing', async () => {
    await nodes[0]!.request('publish', { id: 'snap-1', size_bytes: 2 * 1024 * 1024 })
    const intruders = [
      new Intruder(testnet.bootstrap, join(cluster.dir, 'intruder-proof'), 'bad-proof'),
      new Intruder(testnet.bootstrap, join(cluster.dir, 'intruder-silent'), 'silent'),
    ]
    try {
      // Worst case: the topics leaked, so the intruders reach both planes of every member.
      const secret = Buffer.from(cluster.secret, 'hex')
      const topics = [deriveTopic(secret), deriveControlTopic(secret)]
      await Promise.all(intruders.map((x) => x.join(topics, [nodes[0]!.key])))
      for (const x of intruders) {
        await Promise.all(
          nodes.map((n) =>
            n.waitFor(
              (e) => e.event === 'admission-refused' && e.key === x.swarm.keyPair.publicKey.toString('hex'),
              10_000,
              `refuse ${x.mode}`,
            ),
          ),
        )
      }
      for (const x of intruders) {
        // Two planes per member: its data and its control connection.
        await withTimeout(x.closedBy(2 * nodes.length), 5000, `${x.mode}: closed by every member`)
        expect(x.connections.length).toBeGreaterThanOrEqual(1)
        for (const conn of x.connections.filter((c) => c.closed_ms !== null)) {
          expect(conn.closed_ms! - conn.opened_ms).toBeLessThan(1500)
          // At most the member's own hello or admit (its proof), never a ping or control message.
          expect(conn.frames.filter((k) => k !== FrameKind.Hello && k !== FrameKind.Admit)).toEqual([])
        }
        expect(x.blocks_received).toBe(0)
      }
      for (const n of nodes) {
        const view = await n.request<PeerTableView>('peers')
        expect(view.reachable).toHaveLength(4)
      }
    } finally {
      for (const x of intruders) await x.close()
    }
  })
})
