import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { LocalFederation, type LocalNode, type LogRecord } from '../../src/demo/local-federation.ts'
import { nodePaths } from '../../src/runtime/paths.ts'
import { localFederations } from './fixtures.ts'
import { Client, mailboxCounts } from './zero-loss-run.ts'

const startFederation = localFederations()

const since = (name: string, t: number) => (r: LogRecord) => r.event === name && Number(r.time) >= t

// Long enough for detection and an election with a restore on the other side, on a loaded machine.
const ISOLATION_MS = 20_000

/**
 * Three nodes, output commit k=1, mail through node 2's front door (node 2 is never faulted). The server
 * (node 0, the highest priority) is isolated: it goes on serving alone but can release nothing (no
 * candidate confirms its snapshots); node 1 is elected on the other side and acknowledges mail, released
 * once node 2 stored the snapshot. At the heal node 0 wins by priority and node 1 merges into it.
 */
async function partitionedFederation() {
  const fed = await startFederation({
    nodes: 3,
    snapshot_interval_ms: 1000,
    front_door: {},
    output_commit: 1,
  })
  const first = await fed.server(60_000)
  expect(first.index).toBe(0)
  const door = fed.nodes[2]!.front_door!
  const client = new Client(door.host, door.port)
  await client.more(3, 60_000)
  const cut_ms = Date.now()
  await first.isolate(ISOLATION_MS)
  const { node: second } = await LocalFederation.first(
    fed.nodes.filter((n) => n !== first),
    since('service_answering', cut_ms),
    60_000,
    'a server on the other side',
  )
  expect(second.index).toBe(1)
  // Acknowledged by node 1 during the partition: released, so stored on node 2 (the only candidate there).
  await client.more(5, 60_000)
  return { fed, first, second, client, cut_ms }
}

/** Every dead-fork record any node logged since `t`. */
function deadForkRecords(nodes: LocalNode[], name: string, t: number): LogRecord[] {
  return nodes.flatMap((n) => n.records.filter(since(name, t)))
}

/**
 * Resolves once every other live node stored `winner`'s first snapshot taken after `after_ms` (a merge's
 * own snapshot, which records what it merged): a fork wrongly taken for dead was taken for dead by then.
 */
async function mergeSnapshotEverywhere(winner: LocalNode, others: LocalNode[], after_ms: number) {
  const taken = await winner.waitFor(since('snapshot_taken', after_ms), 60_000, 'the merge snapshot')
  await Promise.all(
    others.map((n) =>
      n.waitFor(
        (r) => r.event === 'snapshot_collected' && r.id === taken.id,
        60_000,
        `${n.name} stores ${String(taken.id)}`,
      ),
    ),
  )
}

describe('dead fork end to end (real node processes, mail service, output commit 1, front door)', () => {
  it('an ordinary heal merges the loser once and no node takes its last snapshot for a dead fork', async () => {
    const { fed, first, second, client, cut_ms } = await partitionedFederation()
    try {
      await second.waitFor(since('merge_finished', cut_ms), ISOLATION_MS + 90_000, 'the loser merges')
      const landed = await first.waitFor(since('merge_landed', cut_ms), 10_000, 'the merge lands')
      await mergeSnapshotEverywhere(first, [second, fed.nodes[2]!], Number(landed.time))
      await client.more(3, 60_000)
    } finally {
      await client.stop()
    }
    expect(deadForkRecords(fed.nodes, 'dead_fork_merge_started', cut_ms)).toEqual([])
    expect(first.records.filter(since('merge_landed', cut_ms))).toHaveLength(1)
    const counts = await mailboxCounts(join(nodePaths(first.data_dir).service_state, 'mail', 'alice'))
    expect([...client.acked].filter((n) => (counts.get(n) ?? 0) === 0)).toEqual([])
    expect([...counts].filter(([, c]) => c > 1)).toEqual([])
  }, 300_000)

  it('the other side server is killed as its merge starts: a candidate merges its fork once, no acknowledged mail is lost', async () => {
    const { fed, first, second, client, cut_ms } = await partitionedFederation()
    const witness = fed.nodes[2]!
    try {
      // Killed as it starts merging: its changes (acknowledged mail among them) are only in the snapshots
      // node 2 holds. Node 2 then follows node 0 and merges that fork as a dead one.
      await second.waitFor(since('merge_started', cut_ms), ISOLATION_MS + 90_000, 'the loser starts merging')
      second.signal('SIGKILL')
      await second.waitExit(10_000)
      const merged = await witness.waitFor(
        since('dead_fork_merged', cut_ms),
        120_000,
        'node 2 merges the dead fork',
      )
      expect(merged.winner).toBe(first.records.find((r) => r.event === 'node_started')?.key)
      const landed = await first.waitFor(since('merge_landed', cut_ms), 10_000, 'the dead fork lands')
      await mergeSnapshotEverywhere(first, [witness], Number(landed.time))
      await client.more(3, 60_000)
    } finally {
      await client.stop()
    }
    // Judged by the client's acknowledgements against node 0's mailbox (Sustain's accounting plays no part).
    const counts = await mailboxCounts(join(nodePaths(first.data_dir).service_state, 'mail', 'alice'))
    expect([...client.acked].filter((n) => (counts.get(n) ?? 0) === 0)).toEqual([])
    expect([...counts].filter(([, c]) => c > 1)).toEqual([])
    // Once: one dead-fork merge started and finished, one merge landed on the winner.
    expect(deadForkRecords(fed.nodes, 'dead_fork_merge_started', cut_ms)).toHaveLength(1)
    expect(deadForkRecords(fed.nodes, 'dead_fork_merged', cut_ms)).toHaveLength(1)
    expect(first.records.filter(since('merge_landed', cut_ms))).toHaveLength(1)
  }, 300_000)
})
