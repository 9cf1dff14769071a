import { describe, expect, it } from 'vitest'
import { DEFAULT_CORE_CONFIG } from '../../src/core/config.ts'
import type { NodeCore } from '../../src/core/node.ts'
import type { SnapshotRef } from '../../src/core/types.ts'
import { A, B, C, makeNode, ofType, state } from './helpers.ts'

const TIMEOUT_MS = DEFAULT_CORE_CONFIG.handover_timeout_ms

/** A serves; B (40) and C (30) are candidates it knows; A leaves and names B with its final snapshot. */
function leavingServer(): { node: NodeCore; final: SnapshotRef; named_ms: number } {
  const node = makeNode(A, 50)
  node.handle({ type: 'tick', now_ms: 1600 })
  node.handle({ type: 'restore-done', ok: true, snapshot: null, now_ms: 1700 })
  for (const [id, priority] of [
    [B, 40],
    [C, 30],
  ] as const) {
    node.handle({ type: 'message', from: id, msg: state('candidate', { priority, server: A }), now_ms: 1800 })
  }
  const final = ofType(node.handle({ type: 'leave', now_ms: 2000 }), 'take-snapshot')[0]!.snapshot
  const named = node.handle({ type: 'snapshot-stored', snapshot: final, now_ms: 2100 })
  expect(ofType(named, 'broadcast').find((e) => e.msg.type === 'handover')?.msg).toMatchObject({ to: B })
  return { node, final, named_ms: 2100 }
}

function restoringState(progress: number) {
  return state('restoring', { term: 2, priority: 40, server: B, progress })
}

function handoverTo(effects: ReturnType<NodeCore['handle']>): string | undefined {
  const msg = ofType(effects, 'broadcast').find((e) => e.msg.type === 'handover')?.msg
  return msg?.type === 'handover' ? msg.to : undefined
}

describe('planned hand-over', () => {
  it('the leaving server waits past the hand-over timeout while its successor restores and progresses', () => {
    const { node, final, named_ms } = leavingServer()
    node.handle({
      type: 'message',
      from: B,
      msg: { type: 'claim', term: 2, priority: 40, load: 0, snapshot: final },
      now_ms: named_ms + 50,
    })
    // The successor's states show its restore moving on, every second, for three timeouts.
    for (let t = named_ms + 1000, p = 1; t < named_ms + 3 * TIMEOUT_MS; t += 1000, p++) {
      node.handle({ type: 'message', from: B, msg: restoringState(p), now_ms: t })
      expect(handoverTo(node.handle({ type: 'tick', now_ms: t + 10 }))).toBeUndefined()
    }
    const done = node.handle({
      type: 'message',
      from: B,
      msg: state('server', { term: 2, priority: 40, server: B }),
      now_ms: named_ms + 3 * TIMEOUT_MS,
    })
    expect(ofType(done, 'exit')).toHaveLength(1)
  })

  it('a successor whose restore stops progressing is passed over for the next', () => {
    const { node, final, named_ms } = leavingServer()
    node.handle({
      type: 'message',
      from: B,
      msg: { type: 'claim', term: 2, priority: 40, load: 0, snapshot: final },
      now_ms: named_ms + 50,
    })
    node.handle({ type: 'message', from: B, msg: restoringState(3), now_ms: named_ms + 1000 })
    // Same progress count from now on: alive, but stuck.
    let next: string | undefined
    let t = named_ms + 1200
    for (; t < named_ms + 3 * TIMEOUT_MS && next === undefined; t += 200) {
      node.handle({ type: 'message', from: B, msg: restoringState(3), now_ms: t })
      next = handoverTo(node.handle({ type: 'tick', now_ms: t + 10 }))
    }
    expect(next).toBe(C)
    expect(t - (named_ms + 1000)).toBeGreaterThanOrEqual(TIMEOUT_MS)
    expect(t - (named_ms + 1000)).toBeLessThan(TIMEOUT_MS + 500)
  })

  it('a successor that was passed over gives way: its restore is cancelled and it follows the leaving server', () => {
    const { final } = leavingServer()
    const successor = makeNode(B, 40)
    successor.handle({
      type: 'message',
      from: A,
      msg: state('leaving', { priority: 50, server: A }),
      now_ms: 1900,
    })
    successor.handle({
      type: 'message',
      from: A,
      msg: { type: 'handover', term: 1, to: B, snapshot: final },
      now_ms: 2100,
    })
    expect(successor.role).toBe('restoring')
    // A refusal by rank (C does not know of the hand-over yet) does not stop a named successor.
    successor.handle({
      type: 'message',
      from: C,
      msg: state('candidate', { priority: 90, server: A }),
      now_ms: 2200,
    })
    successor.handle({
      type: 'message',
      from: C,
      msg: { type: 'refuse', term: 2, better: C, reason: 'rank' },
      now_ms: 2300,
    })
    expect(successor.role).toBe('restoring')
    const moved = successor.handle({
      type: 'message',
      from: A,
      msg: { type: 'handover', term: 1, to: C, snapshot: final },
      now_ms: 13_000,
    })
    expect(ofType(moved, 'cancel-restore')).toHaveLength(1)
    expect(successor.role).toBe('candidate')
    expect(successor.server).toBe(A)
  })

  it('a candidate does not elect itself while a node restores and progresses, and follows it', () => {
    const node = makeNode(C, 90)
    node.handle({ type: 'joined', now_ms: 0 })
    node.handle({ type: 'message', from: B, msg: restoringState(1), now_ms: 100 })
    const effects = node.handle({ type: 'tick', now_ms: 100 + DEFAULT_CORE_CONFIG.join_wait_ms + 10 })
    expect(ofType(effects, 'restore')).toHaveLength(0)
    expect(node.role).toBe('candidate')
    expect(node.server).toBe(B)
  })

  it('an electing node told of a hand-over to another stops electing and waits for that successor', () => {
    const other = makeNode(C, 10)
    other.handle({ type: 'message', from: A, msg: state('server', { priority: 50, server: A }), now_ms: 100 })
    other.handle({
      type: 'message',
      from: B,
      msg: state('candidate', { priority: 40, server: A }),
      now_ms: 100,
    })
    other.handle({ type: 'peer-down', peer: A, reason: 'suspected', now_ms: 200 })
    expect(other.role).toBe('electing')
    const { final } = leavingServer()
    other.handle({
      type: 'message',
      from: A,
      msg: { type: 'handover', term: 1, to: B, snapshot: final },
      now_ms: 300,
    })
    expect(other.role).toBe('candidate')
    expect(other.server).toBe(A)
  })
})
