import { describe, expect, it } from 'vitest'
import { DEFAULT_CORE_CONFIG } from '../../src/core/config.ts'
import { NodeCore } from '../../src/core/node.ts'
import { type Contender, compareContenders } from '../../src/core/ranking.ts'
import type { NodeId, SnapshotRef } from '../../src/core/types.ts'
import { A, B, C, ofType, ref, state } from './helpers.ts'

const D: NodeId = 'd'.repeat(64)

/** A snapshot of `image_bytes` written by C at `site` (C is the server that fails). */
function image(image_bytes: number, site?: string): SnapshotRef {
  return { ...ref(C, 1, 3), image_bytes, ...(site ? { writer_site: site } : {}) }
}

/** Node A under `capacity`, following C, holding `held`, with its own load, room and site. */
function candidate(held: SnapshotRef, load: number, room_bytes: number | undefined, site?: string) {
  const node = new NodeCore({
    config: { ...DEFAULT_CORE_CONFIG, id: A, priority: 50, strategy: 'capacity', ...(site ? { site } : {}) },
    now_ms: 0,
    held,
    load,
    ...(room_bytes !== undefined ? { room_bytes } : {}),
  })
  node.handle({ type: 'message', from: C, msg: state('server', { server: C }), now_ms: 10 })
  return node
}

const claims = (node: NodeCore, now_ms: number) =>
  ofType(node.handle({ type: 'peer-down', peer: C, reason: 'suspected', now_ms }), 'broadcast').filter(
    (e) => e.msg.type === 'claim',
  )

describe('capacity election: room for the snapshot and site', () => {
  it('the least loaded node without room for the image neither claims nor is waited for', () => {
    const snap = image(10_000)
    const node = candidate(snap, 1, 5_000) // least loaded, but 5 kB free for a 10 kB state
    node.handle({
      type: 'message',
      from: B,
      msg: state('candidate', { server: C, load: 2, room_bytes: 20_000, snapshot: snap }),
      now_ms: 20,
    })
    expect(claims(node, 500)).toEqual([])
    expect(node.role).toBe('electing')
    // B claims: A does not refuse it (A is not eligible), it follows.
    node.handle({
      type: 'message',
      from: B,
      msg: { type: 'claim', term: 2, priority: 10, load: 2, room_bytes: 20_000, snapshot: snap },
      now_ms: 600,
    })
    expect(node.server).toBe(B)
    expect(node.role).toBe('candidate')
  })

  it('with room it claims, and its states and claims report room and site', () => {
    const snap = image(10_000)
    const node = candidate(snap, 1, 50_000, 'north')
    node.handle({
      type: 'message',
      from: B,
      msg: state('candidate', { server: C, load: 2, room_bytes: 20_000, snapshot: snap }),
      now_ms: 20,
    })
    const [claim] = claims(node, 500)
    expect(claim?.msg).toMatchObject({ type: 'claim', room_bytes: 50_000, site: 'north' })
    expect(node.role).toBe('restoring')
  })

  it('a node that reports no room (an older node) counts as having room', () => {
    const snap = image(10_000)
    const node = candidate(snap, 1, undefined)
    node.handle({
      type: 'message',
      from: B,
      msg: state('candidate', { server: C, load: 2, snapshot: snap }),
      now_ms: 20,
    })
    expect(claims(node, 500)).toHaveLength(1)
  })

  it('its own restore filling its disk does not make a claimant step down', () => {
    const snap = image(10_000)
    const node = candidate(snap, 1, 50_000)
    node.handle({
      type: 'message',
      from: D,
      msg: state('candidate', { server: C, load: 2, room_bytes: 50_000, snapshot: snap }),
      now_ms: 20,
    })
    expect(claims(node, 500)).toHaveLength(1)
    node.handle({ type: 'load', load: 1, room_bytes: 0, now_ms: 600 }) // the download took the room
    node.handle({
      type: 'message',
      from: B,
      msg: { type: 'refuse', term: 2, better: D, reason: 'test' },
      now_ms: 610,
    })
    expect(node.role).toBe('restoring')
  })

  it("at a near-tie of load another site than the failed server's wins; a clear load difference still wins", () => {
    const snap = image(10_000, 'north')
    // A at the failed server's site, load 1.0; B elsewhere, load 1.05 (the same 0.1 step): B wins.
    const near = candidate(snap, 1.0, 50_000, 'north')
    near.handle({
      type: 'message',
      from: B,
      msg: state('candidate', { server: C, load: 1.05, site: 'south', snapshot: snap }),
      now_ms: 20,
    })
    expect(claims(near, 500)).toEqual([])
    // B at load 1.3 (another step): A, less loaded, wins despite the site.
    const far = candidate(snap, 1.0, 50_000, 'north')
    far.handle({
      type: 'message',
      from: B,
      msg: state('candidate', { server: C, load: 1.3, site: 'south', snapshot: snap }),
      now_ms: 20,
    })
    expect(claims(far, 500)).toHaveLength(1)
  })

  it('the order is total: room, load step, other site, load, then the static rank', () => {
    const c = (id: NodeId, load: number, room = true, same_site = false): Contender => ({
      id,
      priority: 10,
      load,
      snapshot: null,
      room,
      same_site,
    })
    const cmp = (a: Contender, b: Contender) => Math.sign(compareContenders('capacity', a, b))
    expect(cmp(c(A, 5, true), c(B, 1, false))).toBe(1)
    expect(cmp(c(A, 1.1, true, true), c(B, 1.15, true, false))).toBe(-1)
    expect(cmp(c(A, 1.05, true, true), c(B, 1.15, true, false))).toBe(1)
    expect(cmp(c(A, 1.1, true, false), c(B, 1.15, true, false))).toBe(1)
    expect(cmp(c(A, 1.1), c(D, 1.1))).toBe(1) // the smaller key
    // Not capacity: room and site change nothing.
    expect(Math.sign(compareContenders('static', { ...c(A, 1, false), priority: 20 }, c(B, 1)))).toBe(1)
  })
})
