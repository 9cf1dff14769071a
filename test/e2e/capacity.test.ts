import { describe, expect, it } from 'vitest'
import { sendMail } from '../../examples/mail/smtp-client.ts'
import type { LocalFederation, LocalNode } from '../../src/demo/local-federation.ts'
import { localFederations } from './fixtures.ts'

const startFederation = localFederations()

/** Some mail on the server, then a snapshot captured after it that both candidates collected. */
async function replicatedSnapshot(fed: LocalFederation, server: LocalNode): Promise<string> {
  for (let n = 1; n <= 3; n++)
    await sendMail({
      port: server.port,
      from: 'a@example.org',
      to: ['alice@example.org'],
      subject: `m-${n}`,
      text: 'x\n',
    })
  const acked_ms = Date.now()
  const taken = await server.waitFor(
    (r) => r.event === 'snapshot_taken' && Number(r.time) - Number(r.total_ms) >= acked_ms,
    20_000,
    'a snapshot captured after the mail',
  )
  const id = taken.id as string
  await Promise.all(
    fed.nodes
      .filter((n) => n !== server)
      .map((n) => n.waitFor((r) => r.event === 'snapshot_collected' && r.id === id, 30_000, 'replication')),
  )
  return id
}

/**
 * Node 0, the best ranked, serves. Nodes started together race on a loaded machine (one may claim
 * before it heard the others), so the tests run with preempt: the best node takes over once it is up.
 */
async function bestServes(fed: LocalFederation): Promise<LocalNode> {
  await fed.nodes[0]!.waitFor(
    (r) => r.event === 'role_changed' && r.to === 'server',
    120_000,
    'node 0 serves',
  )
  const server = await fed.server(60_000)
  expect(server.index).toBe(0)
  return server
}

describe('capacity election (real node processes, real mail service, loopback testnet)', () => {
  // Two nodes of equal priority on one machine measure the same CPU and memory: they differ only in the
  // capacity they declare. Both orders, so the smaller key (the static tie-break) cannot pass for it.
  it.each([
    [[1, 8], 1],
    [[8, 1], 0],
  ])('weights %j: node %i, the stronger, is elected', async (weights, stronger) => {
    const fed = await startFederation({
      nodes: 2,
      priorities: [10, 10],
      strategy: 'capacity',
      capacity_weights: weights,
      snapshot_interval_ms: 60_000,
    })
    const server = await fed.server(60_000)
    expect(server.index).toBe(stronger)
    // The figures each node started with (and its peers ranked by): the stronger one's is lower.
    const started = fed.nodes.map((n) => n.records.find((r) => r.event === 'node_started')!)
    expect(Number(started[stronger]!.load)).toBeLessThan(Number(started[1 - stronger]!.load))
  })

  // Node 0 (weight 8) serves first; after its SIGKILL node 1 (weight 4) is the less loaded candidate,
  // but it keeps more disk for other uses than its filesystem has free: room 0, less than the state.
  it('a candidate without room for the snapshot is passed over for a more loaded one with room', {
    timeout: 240_000,
  }, async () => {
    const fed = await startFederation({
      nodes: 3,
      priorities: [10, 10, 10],
      strategy: 'capacity',
      capacity_weights: [8, 4, 1],
      disk_reserve_bytes: [0, Number.MAX_SAFE_INTEGER, 0],
      snapshot_interval_ms: 500,
      preempt: true,
    })
    const server = await bestServes(fed)
    const started = fed.nodes.map((n) => n.records.find((r) => r.event === 'node_started')!)
    expect(started.map((r) => Number(r.room_bytes) > 0)).toEqual([true, false, true])
    expect(Number(started[1]!.load)).toBeLessThan(Number(started[2]!.load))
    await replicatedSnapshot(fed, server)
    const killed_ms = Date.now()
    server.signal('SIGKILL')
    const successor = await fed.server(60_000)
    expect(successor.index).toBe(2)
    const elected = (n: LocalNode) =>
      n.records.some((r) => r.event === 'elected' && Number(r.time) >= killed_ms)
    expect(elected(fed.nodes[1]!)).toBe(false)
    expect(new Set((await successor.mailbox('alice')).match(/^Subject: m-\d+$/gm))).toEqual(
      new Set(['Subject: m-1', 'Subject: m-2', 'Subject: m-3']),
    )
  })

  // Weight 1000 puts every node's figure at the same load step (0 below a load average of ~48 on 2
  // cores), so the site decides between the two candidates: the one at another site than the failed
  // server's. Both placements, so the smaller key cannot pass for it.
  it.each([
    [['north', 'north', 'south'], 2],
    [['north', 'south', 'north'], 1],
  ])(
    'sites %j: node %i, at another site than the failed server, is elected',
    { timeout: 240_000 },
    async (sites, other) => {
      const fed = await startFederation({
        nodes: 3,
        priorities: [30, 10, 10],
        strategy: 'capacity',
        capacity_weights: [1000, 1000, 1000],
        sites,
        snapshot_interval_ms: 500,
        preempt: true,
      })
      const server = await bestServes(fed)
      const started = fed.nodes.map((n) => n.records.find((r) => r.event === 'node_started')!)
      expect(started.map((r) => r.site)).toEqual(sites)
      expect(started.every((r) => Number(r.load) < 0.1)).toBe(true)
      await replicatedSnapshot(fed, server)
      server.signal('SIGKILL')
      const successor = await fed.server(60_000)
      expect(successor.index).toBe(other)
    },
  )
})
