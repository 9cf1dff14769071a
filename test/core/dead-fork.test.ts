import { describe, expect, it } from 'vitest'
import { closure, covers, nextSnapshotRef } from '../../src/core/lineage.ts'
import { validateControlMessage } from '../../src/core/messages.ts'
import type { SnapshotRef } from '../../src/core/types.ts'
import { A, B, C, makeNode, ofType, ref, state } from './helpers.ts'

/** A's snapshot A:4:2, restored from B:2:3 (the common past before the split), without B's later fork. */
function serverHead(merged?: SnapshotRef['merged']): SnapshotRef {
  const head = {
    ...ref(A, 4, 2),
    lineage: [
      { writer: B, term: 2, seq: 3, time_ms: 2003 },
      { writer: A, term: 4, seq: 2, time_ms: 4002 },
    ],
  }
  return merged ? { ...head, merged } : head
}

/** B's dead fork: B:3:7, restored from B:2:3 too. */
const fork: SnapshotRef = {
  ...ref(B, 3, 7),
  lineage: [
    { writer: B, term: 2, seq: 3, time_ms: 2003 },
    { writer: B, term: 3, seq: 7, time_ms: 3007 },
  ],
}

function candidateFollowingA(head: SnapshotRef) {
  const node = makeNode(C, 10, {}, fork)
  node.handle({
    type: 'message',
    from: A,
    msg: state('server', { priority: 90, term: 4, server: A, head, snapshot: head }),
    now_ms: 100,
  })
  expect(node.role).toBe('candidate')
  expect(node.server).toBe(A)
  return node
}

describe('lineage closure', () => {
  it('a merged fork is covered up to its seq, per writer and term', () => {
    const head = serverHead([{ writer: B, term: 3, seq: 7, time_ms: 3007 }])
    expect(covers(closure(head), fork)).toBe(true)
    expect(covers(closure(head), ref(B, 3, 5))).toBe(true)
    expect(covers(closure(head), ref(B, 3, 8))).toBe(false)
    expect(covers(closure(serverHead()), fork)).toBe(false)
  })

  it('the next snapshot carries merged segments forward, without those its lineage covers', () => {
    const merged = [
      { writer: B, term: 3, seq: 7, time_ms: 3007 },
      { writer: B, term: 2, seq: 3, time_ms: 2003 },
    ]
    const next = nextSnapshotRef(serverHead(), A, 4, 5000, 64, merged)
    expect(next.merged).toEqual([{ writer: B, term: 3, seq: 7, time_ms: 3007 }])
    expect(nextSnapshotRef(next, A, 4, 6000, 64).merged).toEqual(next.merged)
  })
})

describe('winner of a merge', () => {
  it('records the merged head in its next snapshot and holds that fork from then on', () => {
    const node = makeNode(A, 90)
    node.handle({ type: 'tick', now_ms: 1600 })
    node.handle({ type: 'restore-done', ok: true, snapshot: null, now_ms: 1700 })
    expect(node.holdsFork(fork)).toBe(false)
    const effects = node.handle({ type: 'merged', from: C, head: fork, now_ms: 1800 })
    // Held at once (before the snapshot that records it is stored): a second offer is not applied.
    expect(node.holdsFork(fork)).toBe(true)
    expect(node.holdsFork(ref(B, 3, 8))).toBe(false)
    const next = ofType(effects, 'take-snapshot')[0]!.snapshot
    expect(covers(closure(next), fork)).toBe(true)
  })
})

describe('dead fork', () => {
  it('a fork its server held is merged into the next server when that one dies unsnapshotted', () => {
    const node = candidateFollowingA(serverHead([{ writer: B, term: 3, seq: 7, time_ms: 3007 }]))
    expect(ofType(node.handle({ type: 'tick', now_ms: 200 }), 'run-merge')).toEqual([])
    // A dies; C (here: this node) now follows a server that never had the fork.
    const other = { ...ref(C, 5, 1), lineage: [{ writer: C, term: 5, seq: 1, time_ms: 5001 }] }
    node.handle({ type: 'peer-down', peer: A, reason: 'gone', now_ms: 300 })
    node.handle({
      type: 'message',
      from: B.replace(/b/g, 'd'),
      msg: state('server', { priority: 50, term: 5, server: null, head: other, snapshot: other }),
      now_ms: 400,
    })
    const merge = ofType(node.handle({ type: 'tick', now_ms: 500 }), 'run-merge')[0]
    expect(merge).toMatchObject({ dead_fork: true, head: { id: fork.id } })
  })

  it('a candidate holding a fork its server does not hold, whose writer is gone, merges it and stays candidate', () => {
    const node = candidateFollowingA(serverHead())
    const effects = node.handle({ type: 'tick', now_ms: 200 })
    const merge = ofType(effects, 'run-merge')[0]!
    expect(merge).toMatchObject({ winner: A, dead_fork: true, head: { id: fork.id } })
    // Archived since the common past: B:2:3, held by both.
    expect(merge.fork?.id).toBe(`${B}:2:3`)
    expect(node.role).toBe('candidate')
    expect(ofType(node.handle({ type: 'tick', now_ms: 300 }), 'run-merge')).toEqual([])
    node.handle({ type: 'merge-done', ok: true, winner: A, now_ms: 400 })
    expect(ofType(node.handle({ type: 'tick', now_ms: 500 }), 'run-merge')).toEqual([])
    // Still remembered: until the server's head says it holds the fork, a late one offers it again.
    expect(node.forks.map((f) => f.id)).toContain(fork.id)
  })

  it('a failed dead-fork merge is retried after merge_retry_ms', () => {
    const node = candidateFollowingA(serverHead())
    node.handle({ type: 'tick', now_ms: 200 })
    node.handle({ type: 'merge-done', ok: false, winner: A, reason: 'cut', now_ms: 300 })
    expect(ofType(node.handle({ type: 'tick', now_ms: 400 }), 'run-merge')).toEqual([])
    const retry = ofType(node.handle({ type: 'tick', now_ms: 300 + 60_000 }), 'run-merge')[0]
    expect(retry).toMatchObject({ attempt: 2, dead_fork: true })
  })

  it('nothing is merged when the server already holds the fork (a merge recorded it)', () => {
    const node = candidateFollowingA(serverHead([{ writer: B, term: 3, seq: 7, time_ms: 3007 }]))
    expect(ofType(node.handle({ type: 'tick', now_ms: 200 }), 'run-merge')).toEqual([])
  })

  it("nothing is merged while the fork is a live server's lineage (the heal merges it)", () => {
    const node = candidateFollowingA(serverHead())
    node.handle({
      type: 'message',
      from: B,
      msg: state('server', { priority: 10, term: 3, server: B, head: fork, snapshot: fork }),
      now_ms: 150,
    })
    expect(ofType(node.handle({ type: 'tick', now_ms: 200 }), 'run-merge')).toEqual([])
  })
})

describe('merge-offer message', () => {
  it('carries the merged head with its merged segments, and the dead-fork flag; bad segments are refused', () => {
    const head = serverHead([{ writer: B, term: 3, seq: 7, time_ms: 3007 }])
    const offer = {
      type: 'merge-offer',
      term: 4,
      id: 'merge:1',
      fork_id: `${B}:2:3`,
      fork_time_ms: 2003,
      bytes: 10,
      head,
      dead_fork: true,
    }
    expect(validateControlMessage(offer)).toEqual({ ok: true, value: offer })
    const bad = { ...offer, head: { ...head, merged: [{ writer: B, term: 3, seq: 0, time_ms: 1 }] } }
    expect(validateControlMessage(bad)).toMatchObject({ ok: false, reason: expect.stringContaining('head') })
  })
})
