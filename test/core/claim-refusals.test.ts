import { describe, expect, it } from 'vitest'
import type { RefuseMessage } from '../../src/core/messages.ts'
import { A, B, C, makeNode, ofType, state } from './helpers.ts'

const D = 'd'.repeat(64)

function refuse(better: string, reason = `${better.slice(0, 8)} outranks`): RefuseMessage {
  return { type: 'refuse', term: 2, better, reason }
}

describe('refusals naming a node the claimant cannot reach (claim-refusals.ts)', () => {
  it('formation: one refusal for a node never heard gives the claim up; the wait is bounded', () => {
    const b = makeNode(B, 20)
    b.handle({ type: 'message', from: C, msg: state('candidate', { priority: 10, term: 0 }), now_ms: 10 })
    b.handle({ type: 'tick', now_ms: 1600 })
    expect(b.role).toBe('restoring')
    // C reaches A (priority 30), which B never heard (a late admission).
    const effects = b.handle({ type: 'message', from: C, msg: refuse(A), now_ms: 1620 })
    expect(b.role).toBe('candidate')
    expect(ofType(effects, 'cancel-restore')).toHaveLength(1)
    for (let t = 1650; t < 1620 + 4500; t += 50) {
      b.handle({ type: 'tick', now_ms: t })
      expect(b.role).toBe('candidate')
    }
    b.handle({ type: 'tick', now_ms: 1620 + 4500 })
    expect(b.role).toBe('restoring')
    // Past the bound: the partition rule again (A stays unreached).
    b.handle({ type: 'message', from: C, msg: refuse(A), now_ms: 1620 + 4520 })
    expect(b.role).toBe('restoring')
  })

  it('formation: the wait ends when the awaited node is heard, and the election ranks it', () => {
    const b = makeNode(B, 20)
    b.handle({ type: 'message', from: C, msg: state('candidate', { priority: 10, term: 0 }), now_ms: 10 })
    b.handle({ type: 'tick', now_ms: 1600 })
    b.handle({ type: 'message', from: C, msg: refuse(A), now_ms: 1620 })
    b.handle({ type: 'message', from: A, msg: state('candidate', { priority: 30, term: 0 }), now_ms: 2000 })
    b.handle({ type: 'tick', now_ms: 2050 })
    expect(b.role).toBe('electing')
    const claim = { type: 'claim' as const, term: 3, priority: 30, load: 0, snapshot: null }
    b.handle({ type: 'message', from: A, msg: claim, now_ms: 2100 })
    expect(b.role).toBe('candidate')
    expect(b.server).toBe(A)
  })

  it('later: a majority of reachable peers following a server the claimant suspected stops its claim', () => {
    const b = makeNode(B, 20)
    b.handle({ type: 'message', from: A, msg: state('server', { priority: 30, server: A }), now_ms: 10 })
    for (const [peer, prio] of [
      [C, 10],
      [D, 5],
    ] as const)
      b.handle({
        type: 'message',
        from: peer,
        msg: state('candidate', { priority: prio, server: A }),
        now_ms: 10,
      })
    expect(b.server).toBe(A)
    b.handle({ type: 'peer-down', peer: A, reason: 'suspected', now_ms: 2000 })
    expect(b.role).toBe('restoring')
    const alive = `server ${A.slice(0, 8)} is alive at term 1`
    // One refusal of two reachable peers: no majority, the partition rule holds.
    b.handle({ type: 'message', from: C, msg: refuse(A, alive), now_ms: 2010 })
    expect(b.role).toBe('restoring')
    b.handle({ type: 'message', from: D, msg: refuse(A, alive), now_ms: 2015 })
    expect(b.role).toBe('candidate')
    // It waits while its peers follow A, and follows A once it hears it again.
    for (let t = 2050; t < 8000; t += 50) {
      if (t % 200 === 0)
        for (const peer of [C, D])
          b.handle({ type: 'message', from: peer, msg: state('candidate', { server: A }), now_ms: t })
      b.handle({ type: 'tick', now_ms: t })
      expect(b.role).toBe('candidate')
    }
    b.handle({ type: 'message', from: A, msg: state('server', { priority: 30, server: A }), now_ms: 8000 })
    expect(b.server).toBe(A)
  })

  it('later: the wait for a suspected server ends when its followers stop following it', () => {
    const b = makeNode(B, 20)
    b.handle({ type: 'message', from: A, msg: state('server', { priority: 30, server: A }), now_ms: 10 })
    b.handle({ type: 'message', from: C, msg: state('candidate', { priority: 10, server: A }), now_ms: 10 })
    b.handle({ type: 'peer-down', peer: A, reason: 'suspected', now_ms: 2000 })
    b.handle({ type: 'message', from: C, msg: refuse(A, 'server alive'), now_ms: 2010 })
    expect(b.role).toBe('candidate')
    // A died for C too: C elects (and votes for B, the best it reaches).
    b.handle({
      type: 'message',
      from: C,
      msg: state('electing', { priority: 10, server: null }),
      now_ms: 2500,
    })
    b.handle({ type: 'tick', now_ms: 2550 })
    expect(b.role).toBe('restoring')
  })
})
