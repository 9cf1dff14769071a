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
 * Three nodes, output commit k=1. Node 0 (the highest priority; it wins every heal) is isolated: alone
 * it serves (or goes on serving) but releases nothing, as no candidate confirms its snapshots. On the
 * other side `loser` serves and acknowledges mail through the front door of `witness`, the third node,
 * never faulted: released once `witness` stored the snapshot (it is the only candidate there). At the
 * heal `loser` merges into node 0. Which node served first depends on the joint start, so the roles are
 * named from it: the loser is the server of the side node 0 is cut from.
 */
async function partitionedFederation() {
  const fed = await startFederation({
    nodes: 3,
    snapshot_interval_ms: 1000,
    front_door: {},
    output_commit: 1,
  })
  const first = await fed.server(60_000)
  const [winner, one, two] = fed.nodes as [LocalNode, LocalNode, LocalNode]
  await first.waitFor((r) => r.event === 'snapshot_taken', 30_000, 'a first snapshot')
  // Cut only once both others hold a snapshot of the first server: a side that held none would serve
  // from nothing, and the first server's snapshots would be a fork (merged as dead by the witness at once).
  const key = String(first.records.find((r) => r.event === 'node_started')?.key)
  await Promise.all(
    fed.nodes
      .filter((n) => n !== first)
      .map((n) =>
        n.waitFor(
          (r) => r.event === 'snapshot_collected' && String(r.id).startsWith(`${key}:`),
          30_000,
          `${n.name} holds a snapshot of the first server`,
        ),
      ),
  )
  const cut_ms = Date.now()
  await winner.isolate(ISOLATION_MS)
  let loser: LocalNode
  if (first === winner) {
    // The other side elects one of its two nodes.
    const { node } = await LocalFederation.first(
      [one, two],
      since('service_answering', cut_ms),
      60_000,
      'a server on the other side',
    )
    loser = node
  } else {
    // The first server stays the other side's; node 0, alone, claims and serves too.
    loser = first
    await winner.waitFor(since('service_answering', cut_ms), 60_000, 'node 0 serves alone')
  }
  const witness = loser === one ? two : one
  const client = new Client(witness.front_door!.host, witness.front_door!.port)
  // Acknowledged by `loser` during the partition: released, so stored on `witness`.
  await client.more(5, 60_000)
  return { fed, winner, loser, witness, client, cut_ms }
}

/** Every dead-fork record any node logged since `t`. */
function deadForkRecords(nodes: LocalNode[], name: string, t: number): LogRecord[] {
  return nodes.flatMap((n) => n.records.filter(since(name, t)))
}

/**
 * Resolves once every other live node stored a snapshot `winner` took after `after_ms` (the merge's own
 * snapshot or a later one: each holds what the merge brought): a fork wrongly taken for dead was taken
 * for dead by then. Not necessarily the first one taken: a merge snapshot taken at the old term ranks
 * below the loser's and the winner's retention may forget it at once, before any reader fetched it.
 */
async function mergeSnapshotEverywhere(winner: LocalNode, others: LocalNode[], after_ms: number) {
  await winner.waitFor(since('snapshot_taken', after_ms), 60_000, 'the merge snapshot')
  const takenAfter = (id: unknown) =>
    winner.records.some((t) => t.event === 'snapshot_taken' && Number(t.time) >= after_ms && t.id === id)
  await Promise.all(
    others.map((n) =>
      n.waitFor(
        (r) => r.event === 'snapshot_collected' && takenAfter(r.id),
        60_000,
        `${n.name} stores a snapshot node 0 took after the merge`,
      ),
    ),
  )
}

describe('dead fork end to end (real node processes, mail service, output commit 1, front door)', () => {
  it('an ordinary heal merges the loser once and no node takes its last snapshot for a dead fork', async () => {
    const { fed, winner, loser, witness, client, cut_ms } = await partitionedFederation()
    try {
      await loser.waitFor(since('merge_finished', cut_ms), ISOLATION_MS + 90_000, 'the loser merges')
      const landed = await winner.waitFor(since('merge_landed', cut_ms), 10_000, 'the merge lands')
      await mergeSnapshotEverywhere(winner, [loser, witness], Number(landed.time))
      await client.more(3, 60_000)
    } finally {
      await client.stop()
    }
    expect(deadForkRecords(fed.nodes, 'dead_fork_merge_started', cut_ms)).toEqual([])
    expect(winner.records.filter(since('merge_landed', cut_ms))).toHaveLength(1)
    const counts = await mailboxCounts(join(nodePaths(winner.data_dir).service_state, 'mail', 'alice'))
    expect([...client.acked].filter((n) => (counts.get(n) ?? 0) === 0)).toEqual([])
    expect([...counts].filter(([, c]) => c > 1)).toEqual([])
  }, 300_000)

  it('the other side server is killed as its merge starts: a candidate merges its fork once, no acknowledged mail is lost', async () => {
    const { fed, winner, loser, witness, client, cut_ms } = await partitionedFederation()
    try {
      // Killed as it starts merging: its changes (acknowledged mail among them) are only in the snapshots
      // the witness holds. The witness then follows node 0 and merges that fork as a dead one.
      await loser.waitFor(since('merge_started', cut_ms), ISOLATION_MS + 90_000, 'the loser starts merging')
      loser.signal('SIGKILL')
      await loser.waitExit(10_000)
      const merged = await witness.waitFor(
        since('dead_fork_merged', cut_ms),
        120_000,
        'the witness merges the dead fork',
      )
      expect(merged.winner).toBe(winner.records.find((r) => r.event === 'node_started')?.key)
      const landed = await winner.waitFor(since('merge_landed', cut_ms), 10_000, 'the dead fork lands')
      await mergeSnapshotEverywhere(winner, [witness], Number(landed.time))
      await client.more(3, 60_000)
    } finally {
      await client.stop()
    }
    // Judged by the client's acknowledgements against node 0's mailbox (Sustain's accounting plays no part).
    const counts = await mailboxCounts(join(nodePaths(winner.data_dir).service_state, 'mail', 'alice'))
    expect([...client.acked].filter((n) => (counts.get(n) ?? 0) === 0)).toEqual([])
    expect([...counts].filter(([, c]) => c > 1)).toEqual([])
    // Once: one dead-fork merge started and finished, one merge landed on the winner.
    expect(deadForkRecords(fed.nodes, 'dead_fork_merge_started', cut_ms)).toHaveLength(1)
    expect(deadForkRecords(fed.nodes, 'dead_fork_merged', cut_ms)).toHaveLength(1)
    expect(winner.records.filter(since('merge_landed', cut_ms))).toHaveLength(1)
  }, 300_000)
})
