import { describe, expect, it } from 'vitest'
import type { CoreConfig } from '../../src/core/config.ts'
import type { SnapshotRef } from '../../src/core/types.ts'
import { A, B, C, makeNode, ofType, ref, state } from './helpers.ts'

/** A lone node that serves (term 1), empty, with output commit k. */
function server(k: number, extra: Partial<CoreConfig> = {}) {
  const node = makeNode(A, 30, { output_commit: k, ...extra })
  node.handle({ type: 'tick', now_ms: 1600 })
  node.handle({ type: 'restore-done', ok: true, snapshot: null, now_ms: 1700 })
  node.handle({ type: 'driver', kind: 'answering', now_ms: 1710 })
  expect(node.role).toBe('server')
  return node
}

function takes(effects: ReturnType<ReturnType<typeof makeNode>['handle']>): SnapshotRef[] {
  return ofType(effects, 'take-snapshot').map((e) => e.snapshot)
}

const stored = (snapshot: SnapshotRef, term = 1) => ({ type: 'stored' as const, term, snapshot })

describe('output commit in the core', () => {
  it('waiting output starts a capture at once; more output during it starts one right after it is stored', () => {
    const node = server(1)
    const [first] = takes(node.handle({ type: 'output-waiting', now_ms: 1800 }))
    expect(first?.seq).toBe(1)
    // In flight: coalesced, nothing now.
    expect(takes(node.handle({ type: 'output-waiting', now_ms: 1810 }))).toEqual([])
    expect(takes(node.handle({ type: 'output-waiting', now_ms: 1820 }))).toEqual([])
    const next = takes(node.handle({ type: 'snapshot-stored', snapshot: first!, now_ms: 1900 }))
    expect(next.map((s) => s.seq)).toEqual([2])
    // Nothing waited during the second: its store starts nothing.
    expect(takes(node.handle({ type: 'snapshot-stored', snapshot: next[0]!, now_ms: 2000 }))).toEqual([])
  })

  it('a capture the head covers frees the slot: output that waited meanwhile starts the next at once', () => {
    const node = server(1)
    const [first] = takes(node.handle({ type: 'output-waiting', now_ms: 1800 }))
    node.handle({ type: 'snapshot-stored', snapshot: first!, now_ms: 1850 })
    const [second] = takes(node.handle({ type: 'output-waiting', now_ms: 1860 }))
    expect(second?.seq).toBe(2)
    expect(takes(node.handle({ type: 'output-waiting', now_ms: 1870 }))).toEqual([]) // in flight
    // Another id (a stale event) changes nothing.
    expect(takes(node.handle({ type: 'snapshot-covered', id: 'other', now_ms: 1875 }))).toEqual([])
    const next = takes(node.handle({ type: 'snapshot-covered', id: second!.id, now_ms: 1880 }))
    expect(next).toHaveLength(1)
    expect(node.head?.id).toBe(first!.id) // nothing new was stored: the head stays
    // Nothing was stored under the covered capture's id: the next capture takes it (as after a failure).
    expect(next[0]!.seq).toBe(2)
    // Without waiting output a covered capture starts nothing.
    expect(takes(node.handle({ type: 'snapshot-covered', id: next[0]!.id, now_ms: 1890 }))).toEqual([])
  })

  it('a capture for output says so (it may be covered at any head age); a covered one keeps the interval due', () => {
    const node = server(1) // restored at 1700: the interval's snapshot is due at 6700
    const first = ofType(node.handle({ type: 'output-waiting', now_ms: 1800 }), 'take-snapshot')
    expect(first.map((e) => e.for_output)).toEqual([true])
    node.handle({ type: 'snapshot-stored', snapshot: first[0]!.snapshot, now_ms: 1850 }) // stored: due 6800
    const [second] = ofType(node.handle({ type: 'output-waiting', now_ms: 2000 }), 'take-snapshot')
    expect(second?.for_output).toBe(true)
    node.handle({ type: 'snapshot-covered', id: second!.snapshot.id, now_ms: 2050 })
    // The covered capture stored nothing: the interval's snapshot comes at 6800, not 7000, and is a full one.
    expect(takes(node.handle({ type: 'tick', now_ms: 6790 }))).toEqual([])
    const interval = ofType(node.handle({ type: 'tick', now_ms: 6800 }), 'take-snapshot')
    expect(interval).toHaveLength(1)
    expect(interval[0]!.for_output).toBeUndefined()
  })

  it('output commit off: waiting output starts nothing (the interval alone)', () => {
    const node = makeNode(A, 30)
    node.handle({ type: 'tick', now_ms: 1600 })
    node.handle({ type: 'restore-done', ok: true, snapshot: null, now_ms: 1700 })
    expect(takes(node.handle({ type: 'output-waiting', now_ms: 1800 }))).toEqual([])
  })

  it('releases a snapshot once k distinct candidates stored it, once; a repeat or an older one releases nothing', () => {
    const node = server(2)
    const [s1] = takes(node.handle({ type: 'output-waiting', now_ms: 1800 }))
    node.handle({ type: 'snapshot-stored', snapshot: s1!, now_ms: 1850 })
    const msg = (from: string, snapshot: SnapshotRef, now_ms: number) =>
      ofType(node.handle({ type: 'message', from, msg: stored(snapshot), now_ms }), 'release-output')
    expect(msg(B, s1!, 1900)).toEqual([])
    expect(msg(B, s1!, 1910)).toEqual([]) // the same candidate twice is one holder
    const released = msg(C, s1!, 1920)
    expect(released).toHaveLength(1)
    expect(released[0]!.snapshot.id).toBe(s1!.id)
    expect([...released[0]!.holders].sort()).toEqual([B, C])
    expect(msg(B, s1!, 1930)).toEqual([])
  })

  it("counts only its own snapshots of its current term; another writer's teaches what the peer holds", () => {
    const node = server(1)
    const other = ref(B, 1, 7)
    expect(
      ofType(node.handle({ type: 'message', from: B, msg: stored(other), now_ms: 1800 }), 'release-output'),
    ).toEqual([])
    expect(node.peers().find((p) => p.id === B)?.snapshot?.id).toBe(other.id)
    const old_term = ref(A, 0, 3)
    expect(
      ofType(
        node.handle({ type: 'message', from: B, msg: stored(old_term), now_ms: 1810 }),
        'release-output',
      ),
    ).toEqual([])
  })

  it('a candidate that stores a snapshot it did not write broadcasts `stored` at once', () => {
    const node = makeNode(B, 20)
    node.handle({ type: 'message', from: A, msg: state('server', { server: A, priority: 30 }), now_ms: 10 })
    const effects = node.handle({ type: 'snapshot-stored', snapshot: ref(A, 1, 4), now_ms: 20 })
    const sent = ofType(effects, 'broadcast').filter((e) => e.msg.type === 'stored')
    expect(sent).toHaveLength(1)
    expect(sent[0]!.msg).toMatchObject({ type: 'stored', snapshot: { id: ref(A, 1, 4).id } })
  })

  it('a candidate that elects after the server died restores the newest snapshot a peer said it stored', () => {
    const node = makeNode(B, 30, {}, ref(A, 1, 3))
    node.handle({ type: 'message', from: A, msg: state('server', { server: A, priority: 10 }), now_ms: 10 })
    node.handle({
      type: 'message',
      from: C,
      msg: state('candidate', { server: A, priority: 20, snapshot: ref(A, 1, 3) }),
      now_ms: 10,
    })
    // C stored 1:5 (A released output on it); no state from C since.
    node.handle({ type: 'message', from: C, msg: stored(ref(A, 1, 5)), now_ms: 50 })
    const effects = node.handle({ type: 'peer-down', peer: A, reason: 'closed', now_ms: 60 })
    const restore = ofType(effects, 'restore')
    expect(restore).toHaveLength(1)
    expect(restore[0]!.snapshot?.id).toBe(ref(A, 1, 5).id)
    expect(restore[0]!.sources).toEqual([C])
  })

  it('planted bug release-before-stored releases on the server’s own store (what the simulator must catch)', () => {
    const node = server(1, { planted_bug: 'release-before-stored' })
    const [s1] = takes(node.handle({ type: 'output-waiting', now_ms: 1800 }))
    expect(
      ofType(node.handle({ type: 'snapshot-stored', snapshot: s1!, now_ms: 1850 }), 'release-output'),
    ).toHaveLength(1)
  })
})
