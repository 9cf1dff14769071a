import { describe, expect, it } from 'vitest'
import { forkPoint } from '../../src/core/lineage.ts'
import type { NodeCore } from '../../src/core/node.ts'
import { compareSnapshots } from '../../src/core/ranking.ts'
import { A, B, C, makeNode, ofType, ref, state } from './helpers.ts'

function serverNode(priority = 50, extra = {}): NodeCore {
  const node = makeNode(A, priority, { restart_budget: 2, ...extra })
  node.handle({ type: 'tick', now_ms: 1600 })
  node.handle({ type: 'restore-done', ok: true, snapshot: null, now_ms: 1700 })
  expect(node.role).toBe('server')
  return node
}

describe('serving', () => {
  it('takes snapshots on its interval with ids unique by node, term and sequence', () => {
    const node = serverNode()
    const first = ofType(node.handle({ type: 'tick', now_ms: 1700 + 5000 }), 'take-snapshot')[0]!
    expect(first.snapshot.id).toBe(`${A}:1:1`)
    node.handle({ type: 'snapshot-stored', snapshot: { ...first.snapshot, size_bytes: 10 }, now_ms: 6800 })
    const second = ofType(node.handle({ type: 'tick', now_ms: 11_800 }), 'take-snapshot')[0]!
    expect(second.snapshot.id).toBe(`${A}:1:2`)
    expect(second.snapshot.lineage).toEqual([{ writer: A, term: 1, seq: 2, time_ms: 11_800 }])
  })

  it('escalates: restart in place on current state, then resign when the budget is spent', () => {
    const node = serverNode()
    for (const t of [2000, 2100]) {
      const effects = node.handle({ type: 'driver', kind: 'exited', now_ms: t })
      expect(ofType(effects, 'start-service')).toEqual([
        { type: 'start-service', from: 'current', snapshot: null },
      ])
      expect(node.role).toBe('server')
    }
    const effects = node.handle({ type: 'driver', kind: 'exited', now_ms: 2200 })
    expect(ofType(effects, 'broadcast').map((e) => e.msg.type)).toContain('resign')
    expect(ofType(effects, 'stop-service')).toHaveLength(1)
    expect(node.role).toBe('electing')
  })

  it('unusable current state restarts from the newest snapshot', () => {
    const node = serverNode()
    const taken = ofType(node.handle({ type: 'tick', now_ms: 6700 }), 'take-snapshot')[0]!
    node.handle({ type: 'snapshot-stored', snapshot: taken.snapshot, now_ms: 6800 })
    const effects = node.handle({ type: 'driver', kind: 'unusable', now_ms: 7000 })
    expect(ofType(effects, 'start-service')[0]).toMatchObject({ from: 'snapshot', snapshot: taken.snapshot })
  })

  it('unusable current state with no snapshot to restart from: resigns at once', () => {
    const node = serverNode()
    const effects = node.handle({ type: 'driver', kind: 'unusable', now_ms: 2000 })
    expect(ofType(effects, 'start-service')).toEqual([])
    expect(ofType(effects, 'broadcast').map((e) => e.msg.type)).toContain('resign')
    expect(node.role).toBe('electing')
  })

  it('terminate (a signal, an uncaught error): the server stops its service, resigns and exits', () => {
    const node = serverNode()
    const effects = node.handle({ type: 'terminate', reason: 'SIGTERM', now_ms: 2000 })
    const types = effects.map((e) => e.type)
    expect(types.indexOf('stop-service')).toBeLessThan(types.indexOf('exit'))
    expect(ofType(effects, 'broadcast').map((e) => e.msg)).toEqual([{ type: 'resign', term: 1 }])
    expect(ofType(effects, 'exit')).toHaveLength(1)
    // Nothing is handled after the last words (no election, no snapshot, no state).
    expect(node.handle({ type: 'tick', now_ms: 9000 })).toEqual([])
  })

  it('terminate while restoring cancels the restore; a candidate resigns too, keeping its role', () => {
    const claimant = makeNode(A, 50)
    claimant.handle({ type: 'tick', now_ms: 1600 })
    expect(claimant.role).toBe('restoring')
    const effects = claimant.handle({ type: 'terminate', reason: 'SIGINT', now_ms: 1700 })
    expect(ofType(effects, 'cancel-restore')).toHaveLength(1)
    const candidate = makeNode(B, 10)
    candidate.handle({ type: 'message', from: A, msg: state('server', { server: A }), now_ms: 10 })
    const last = candidate.handle({ type: 'terminate', reason: 'SIGHUP', now_ms: 20 })
    expect(ofType(last, 'broadcast').map((e) => e.msg.type)).toEqual(['resign'])
    expect(ofType(last, 'stop-service')).toEqual([])
    expect(candidate.role).toBe('candidate')
  })

  it('a server proved gone by connection events: candidates elect at once, the cause on the timeline', () => {
    const node = makeNode(B, 10)
    node.handle({ type: 'message', from: A, msg: state('server', { server: A }), now_ms: 10 })
    const effects = node.handle({ type: 'peer-down', peer: A, reason: 'gone', now_ms: 20 })
    const suspected = ofType(effects, 'timeline').find((e) => e.name === 'server_suspected')
    expect(suspected?.fields).toEqual({ server: A, reason: 'gone' })
    expect(node.role).toBe('restoring')
  })

  it('candidates elect at once when the server resigns', () => {
    const node = makeNode(B, 10)
    node.handle({ type: 'message', from: A, msg: state('server', { server: A }), now_ms: 10 })
    node.handle({ type: 'message', from: A, msg: { type: 'resign', term: 1 }, now_ms: 20 })
    expect(node.role).toBe('restoring')
  })

  it('leave on the server: stops the service, final snapshot, hands over, exits when the successor serves', () => {
    const node = serverNode()
    node.handle({
      type: 'message',
      from: B,
      msg: state('candidate', { priority: 10, server: A }),
      now_ms: 1800,
    })
    const effects = node.handle({ type: 'leave', now_ms: 2000 })
    expect(effects.map((e) => e.type).indexOf('stop-service')).toBeLessThan(
      effects.map((e) => e.type).indexOf('take-snapshot'),
    )
    const final = ofType(effects, 'take-snapshot')[0]!
    expect(final.final).toBe(true)
    const stored = node.handle({ type: 'snapshot-stored', snapshot: final.snapshot, now_ms: 2100 })
    expect(ofType(stored, 'broadcast').find((e) => e.msg.type === 'handover')?.msg).toMatchObject({ to: B })
    const done = node.handle({
      type: 'message',
      from: B,
      msg: state('server', { term: 2, server: B }),
      now_ms: 3000,
    })
    expect(ofType(done, 'exit')).toHaveLength(1)
  })

  it('on heal the lower priority server merges into the higher, with the fork point', () => {
    const node = serverNode(10)
    const snap = ofType(node.handle({ type: 'tick', now_ms: 6700 }), 'take-snapshot')[0]!.snapshot
    node.handle({ type: 'snapshot-stored', snapshot: snap, now_ms: 6800 })
    const theirs = {
      ...ref(B, 2, 1),
      lineage: [...snap.lineage, { writer: B, term: 2, seq: 1, time_ms: 9000 }],
    }
    const effects = node.handle({
      type: 'message',
      from: B,
      msg: state('server', { priority: 90, term: 2, server: B, head: theirs }),
      now_ms: 9500,
    })
    expect(node.role).toBe('merging')
    expect(ofType(effects, 'run-merge')[0]).toMatchObject({ winner: B, fork: { id: snap.id } })
    node.handle({ type: 'merge-done', ok: false, winner: B, reason: 'cut', now_ms: 9600 })
    expect(node.role).toBe('merging')
    const retry = node.handle({ type: 'tick', now_ms: 10_700 })
    expect(ofType(retry, 'run-merge')[0]?.attempt).toBe(2)
    node.handle({ type: 'merge-done', ok: true, winner: B, now_ms: 11_000 })
    expect(node.role).toBe('candidate')
    expect(node.server).toBe(B)
  })

  it("a merge that lands gives the winner a term above the loser's, and a snapshot that outranks the loser's", () => {
    const node = serverNode(90) // term 1
    const head = ofType(node.handle({ type: 'tick', now_ms: 6700 }), 'take-snapshot')[0]!.snapshot
    node.handle({ type: 'snapshot-stored', snapshot: head, now_ms: 6800 })
    // The loser served in a higher term during the split, and its newest snapshot says so.
    const losers = ref(B, 3, 7)
    node.handle({
      type: 'message',
      from: B,
      msg: state('server', { priority: 10, term: 3, server: B, head: losers, snapshot: losers }),
      now_ms: 9500,
    })
    expect(node.role).toBe('server') // the higher priority keeps the service; B merges into it
    const effects = node.handle({ type: 'merged', from: B, now_ms: 9800 })
    expect(node.term).toBe(4)
    expect(ofType(effects, 'persist')).toEqual([{ type: 'persist', term: 4 }])
    const next = ofType(effects, 'take-snapshot')[0]!.snapshot
    expect(next).toMatchObject({ term: 4, seq: 1 })
    // It descends from the winner's own head, and ranks above the loser's snapshot everywhere.
    expect(next.lineage.map((s) => `${s.writer.slice(0, 1)}:${s.term}:${s.seq}`)).toEqual(['a:1:1', 'a:4:1'])
    expect(compareSnapshots(next, losers)).toBeGreaterThan(0)
  })

  it('a snapshot in flight when a merge lands stays the lineage head; the next one follows it at once', () => {
    const node = serverNode(90)
    const in_flight = ofType(node.handle({ type: 'tick', now_ms: 6700 }), 'take-snapshot')[0]!.snapshot
    node.handle({
      type: 'message',
      from: B,
      msg: state('server', { priority: 10, term: 3, server: B }),
      now_ms: 6750,
    })
    // Landing while a capture runs: nothing new starts now (one capture at a time).
    expect(ofType(node.handle({ type: 'merged', from: B, now_ms: 6760 }), 'take-snapshot')).toEqual([])
    const after = node.handle({ type: 'snapshot-stored', snapshot: in_flight, now_ms: 6800 })
    expect(node.head?.id).toBe(in_flight.id)
    const next = ofType(after, 'take-snapshot')[0]!.snapshot
    expect(next).toMatchObject({ term: 4, seq: 1 })
    expect(next.lineage.at(-2)).toMatchObject({ writer: A, term: 1, seq: in_flight.seq })
  })

  it('with merge_direction newest-term the older term merges even at higher priority', () => {
    const node = serverNode(90, { merge_direction: 'newest-term' })
    node.handle({
      type: 'message',
      from: B,
      msg: state('server', { priority: 10, term: 5, server: B }),
      now_ms: 2000,
    })
    expect(node.role).toBe('merging')
  })
})

describe('forkPoint', () => {
  const seg = (writer: string, term: number, seq: number) => ({
    writer,
    term,
    seq,
    time_ms: term * 100 + seq,
  })
  it('is the newest snapshot both lineages hold', () => {
    expect(forkPoint([seg(A, 1, 5), seg(B, 2, 3)], [seg(A, 1, 7), seg(C, 3, 1)])?.id).toBe(`${A}:1:5`)
    expect(forkPoint([seg(A, 1, 5), seg(B, 2, 3)], [seg(A, 1, 5), seg(B, 2, 9), seg(C, 4, 1)])?.id).toBe(
      `${B}:2:3`,
    )
  })
  it('is null when the lineages share nothing', () => {
    expect(forkPoint([seg(A, 1, 5)], [seg(B, 1, 5)])).toBeNull()
  })
})
