import { describe, expect, it } from 'vitest'
import { A, B, C, makeNode, ofType, ref, state } from './helpers.ts'

describe('election', () => {
  it('a lone node elects itself after the join wait and starts the service empty', () => {
    const node = makeNode(A, 10)
    expect(ofType(node.handle({ type: 'tick', now_ms: 100 }), 'restore')).toEqual([])
    const effects = node.handle({ type: 'tick', now_ms: 1600 })
    expect(node.role).toBe('restoring')
    expect(node.term).toBe(1)
    expect(ofType(effects, 'restore')).toEqual([{ type: 'restore', snapshot: null, sources: [] }])
    node.handle({ type: 'restore-done', ok: true, snapshot: null, now_ms: 1700 })
    expect(node.role).toBe('server')
  })

  it('the join wait counts from when the overlay is up (joined), not from the construction of the core', () => {
    const node = makeNode(A, 10)
    node.handle({ type: 'joined', now_ms: 1200 }) // the overlay took 1.2 s to start
    node.handle({ type: 'tick', now_ms: 1600 })
    expect(node.role).toBe('candidate')
    node.handle({ type: 'tick', now_ms: 2700 })
    expect(node.role).toBe('restoring')
  })

  it('the highest priority reachable candidate claims when the server fails; others wait', () => {
    const high = makeNode(A, 30)
    const low = makeNode(B, 20)
    for (const [node, other, prio] of [
      [high, B, 20],
      [low, A, 30],
    ] as const) {
      node.handle({ type: 'message', from: C, msg: state('server', { server: C }), now_ms: 10 })
      node.handle({
        type: 'message',
        from: other,
        msg: state('candidate', { priority: prio, server: C }),
        now_ms: 10,
      })
    }
    expect(high.server).toBe(C)
    low.handle({ type: 'peer-down', peer: C, reason: 'suspected', now_ms: 500 })
    expect(low.role).toBe('electing')
    const effects = high.handle({ type: 'peer-down', peer: C, reason: 'suspected', now_ms: 500 })
    expect(high.role).toBe('restoring')
    expect(high.term).toBe(2)
    const claim = ofType(effects, 'broadcast').find((e) => e.msg.type === 'claim')!
    low.handle({ type: 'message', from: A, msg: claim.msg, now_ms: 510 })
    expect(low.role).toBe('candidate')
    expect(low.server).toBe(A)
  })

  it('refuses a lower claim and names who outranks it', () => {
    const high = makeNode(A, 30)
    high.handle({ type: 'message', from: C, msg: state('candidate', { priority: 10 }), now_ms: 10 })
    const effects = high.handle({
      type: 'message',
      from: C,
      msg: { type: 'claim', term: 2, priority: 10, load: 0, snapshot: null },
      now_ms: 20,
    })
    const refusal = ofType(effects, 'send')[0]!
    expect(refusal.to).toBe(C)
    expect(refusal.msg).toMatchObject({ type: 'refuse', better: A })
    expect((refusal.msg as { reason: string }).reason).toMatch(/outranks/)
  })

  it('ties in priority go to the smaller node key', () => {
    const a = makeNode(A, 10)
    a.handle({ type: 'message', from: B, msg: state('candidate', { priority: 10, term: 0 }), now_ms: 10 })
    a.handle({ type: 'tick', now_ms: 1600 })
    expect(a.role).toBe('restoring')
    const b = makeNode(B, 10)
    b.handle({ type: 'message', from: A, msg: state('candidate', { priority: 10, term: 0 }), now_ms: 10 })
    b.handle({ type: 'tick', now_ms: 1600 })
    expect(b.role).toBe('electing')
  })

  it('freshest prefers the holder of the newest snapshot over a higher priority', () => {
    const node = makeNode(A, 50, { strategy: 'freshest' }, ref(C, 1, 3))
    node.handle({
      type: 'message',
      from: B,
      msg: state('candidate', { priority: 10, snapshot: ref(C, 1, 4) }),
      now_ms: 10,
    })
    node.handle({ type: 'tick', now_ms: 1600 })
    expect(node.role).toBe('electing')
  })

  it('capacity prefers the least loaded', () => {
    const node = makeNode(A, 50, { strategy: 'capacity' })
    node.handle({ type: 'load', load: 80, now_ms: 1 })
    node.handle({ type: 'message', from: B, msg: state('candidate', { priority: 10, load: 5 }), now_ms: 10 })
    node.handle({ type: 'tick', now_ms: 1600 })
    expect(node.role).toBe('electing')
  })

  it('restores the newest complete snapshot among its own and reachable peers', () => {
    const node = makeNode(A, 50, {}, ref(C, 1, 2))
    node.handle({
      type: 'message',
      from: B,
      msg: state('candidate', { priority: 10, snapshot: ref(C, 1, 5) }),
      now_ms: 10,
    })
    const effects = node.handle({ type: 'tick', now_ms: 1600 })
    expect(ofType(effects, 'restore')[0]).toMatchObject({ snapshot: { id: `${C}:1:5` }, sources: [B] })
  })

  it('falls back to the next newest when a restore fails', () => {
    const node = makeNode(A, 50, {}, ref(C, 1, 2))
    node.handle({
      type: 'message',
      from: B,
      msg: state('candidate', { priority: 10, snapshot: ref(C, 1, 5) }),
      now_ms: 10,
    })
    node.handle({ type: 'tick', now_ms: 1600 })
    const effects = node.handle({
      type: 'restore-done',
      ok: false,
      snapshot: ref(C, 1, 5),
      reason: 'bad chunk',
      now_ms: 1700,
    })
    expect(ofType(effects, 'restore')[0]).toMatchObject({ snapshot: { id: `${C}:1:2` } })
  })

  it('a storage-only node (no service) is never elected, and says so', () => {
    const node = makeNode(A, 99, { can_serve: false })
    const effects = node.handle({ type: 'tick', now_ms: 5000 })
    expect(node.role).toBe('electing')
    const states = ofType(effects, 'broadcast').filter((e) => e.msg.type === 'state')
    expect(states.at(-1)?.msg).toMatchObject({ eligible: false })
  })

  it('a higher-priority node that joins does not take the service without preempt', () => {
    const node = makeNode(A, 90)
    node.handle({ type: 'message', from: B, msg: state('server', { priority: 10, server: B }), now_ms: 10 })
    node.handle({ type: 'tick', now_ms: 5000 })
    expect(node.role).toBe('candidate')
    expect(node.server).toBe(B)
  })

  it('terms never go backwards, and a persisted term survives a restart', () => {
    const node = makeNode(A, 10)
    const effects = node.handle({
      type: 'message',
      from: B,
      msg: state('server', { term: 7, server: B }),
      now_ms: 10,
    })
    expect(ofType(effects, 'persist')).toEqual([{ type: 'persist', term: 7 }])
    node.handle({ type: 'message', from: B, msg: state('server', { term: 3, server: B }), now_ms: 20 })
    expect(node.term).toBe(7)
  })
})
