import { describe, expect, it } from 'vitest'
import { localFederations } from './fixtures.ts'

const startFederation = localFederations()

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
})
