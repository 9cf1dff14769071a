import { describe, expect, it } from 'vitest'
import { DEFAULT_CORE_CONFIG } from '../../src/core/config.ts'
import type { CoreEffect, CoreEvent, TimelineName } from '../../src/core/io.ts'
import { NodeCore } from '../../src/core/node.ts'
import type { NodeId } from '../../src/core/types.ts'
import { A, B, C, makeNode, state } from './helpers.ts'

const FENCE_MS = DEFAULT_CORE_CONFIG.fence_ms
const TICK_MS = 50

/**
 * A few real cores joined by an instant network that can be split: every effect is routed at once,
 * a split tells both sides `peer-down` (as the failure detector would), restores and snapshots finish
 * 100 ms later.
 */
class Cluster {
  readonly nodes: NodeCore[]
  readonly events: Array<{ node: NodeId; name: TimelineName; at_ms: number }> = []
  readonly stops: Array<{ node: NodeId; reason: string; at_ms: number }> = []
  private readonly cut = new Set<string>()
  private restores: Array<{ node: NodeCore; at_ms: number; effect: CoreEffect }> = []
  now_ms = 0

  constructor(members: Array<[NodeId, number]>) {
    this.nodes = members.map(([id, priority]) => makeNode(id, priority, { merge_policy: 'refuse-to-split' }))
  }

  node(id: NodeId): NodeCore {
    return this.nodes.find((n) => n.id === id)!
  }

  private linked(a: NodeId, b: NodeId): boolean {
    return !this.cut.has([a, b].sort().join())
  }

  /** Hands `event` to `node` and routes everything that follows. */
  handle(node: NodeCore, event: CoreEvent): void {
    const queue: Array<[NodeCore, CoreEffect[]]> = [[node, node.handle(event)]]
    for (let steps = 0; queue.length > 0; steps++) {
      expect(steps).toBeLessThan(10_000)
      const [from, effects] = queue.shift()!
      for (const effect of effects) {
        if (effect.type === 'timeline')
          this.events.push({ node: from.id, name: effect.name, at_ms: this.now_ms })
        if (effect.type === 'stop-service')
          this.stops.push({ node: from.id, reason: effect.reason, at_ms: this.now_ms })
        if (effect.type === 'restore' || effect.type === 'take-snapshot')
          this.restores.push({ node: from, at_ms: this.now_ms + 100, effect })
        if (effect.type !== 'broadcast' && effect.type !== 'send') continue
        for (const to of this.nodes) {
          if (to === from || !this.linked(from.id, to.id)) continue
          if (effect.type === 'send' && effect.to !== to.id) continue
          queue.push([
            to,
            to.handle({ type: 'message', from: from.id, msg: effect.msg, now_ms: this.now_ms }),
          ])
        }
      }
    }
  }

  split(left: NodeId[], right: NodeId[]): void {
    for (const a of left) {
      for (const b of right) {
        this.cut.add([a, b].sort().join())
        this.handle(this.node(a), { type: 'peer-down', peer: b, reason: 'suspected', now_ms: this.now_ms })
        this.handle(this.node(b), { type: 'peer-down', peer: a, reason: 'suspected', now_ms: this.now_ms })
      }
    }
  }

  heal(): void {
    this.cut.clear()
  }

  /** Runs to `until_ms` in ticks; `check` runs after every tick. */
  run(until_ms: number, check: () => void = () => {}): void {
    while (this.now_ms < until_ms) {
      this.now_ms += TICK_MS
      const due = this.restores.filter((r) => r.at_ms <= this.now_ms)
      this.restores = this.restores.filter((r) => r.at_ms > this.now_ms)
      for (const r of due) {
        const now_ms = this.now_ms
        if (r.effect.type === 'restore')
          this.handle(r.node, { type: 'restore-done', ok: true, snapshot: r.effect.snapshot, now_ms })
        if (r.effect.type === 'take-snapshot')
          this.handle(r.node, { type: 'snapshot-stored', snapshot: r.effect.snapshot, now_ms })
      }
      for (const node of this.nodes) this.handle(node, { type: 'tick', now_ms: this.now_ms })
      check()
    }
  }

  serving(ids: NodeId[] = this.nodes.map((n) => n.id)): NodeId[] {
    return ids.filter((id) => ['server', 'restoring'].includes(this.node(id).role))
  }

  first(node: NodeId, name: TimelineName, after_ms = 0): number | undefined {
    return this.events.find((e) => e.node === node && e.name === name && e.at_ms >= after_ms)?.at_ms
  }
}

/** Three members, A the highest priority: A serves once the others' support (after their gaps) arrives. */
function threeWithServerA(): Cluster {
  const cluster = new Cluster([
    [A, 50],
    [B, 40],
    [C, 10],
  ])
  cluster.run(6000, () => expect(cluster.serving().length).toBeLessThanOrEqual(1))
  expect(cluster.node(A).role).toBe('server')
  expect(cluster.node(B).server).toBe(A)
  // Nobody claims before its own support gap after boot has passed.
  expect(cluster.first(A, 'elected')).toBeGreaterThanOrEqual(FENCE_MS)
  return cluster
}

describe('merge_policy refuse-to-split', () => {
  it('a server cut off into a minority stops its service at once, keeps its state and never claims alone', () => {
    const cluster = threeWithServerA()
    const split_ms = cluster.now_ms
    cluster.split([A], [B, C])
    // Peer-down takes the peers' support away at once: the step-down happens in the same step.
    const stop = cluster.stops.find((s) => s.node === A && s.at_ms >= split_ms)
    expect(stop).toEqual({ node: A, reason: 'lost quorum', at_ms: split_ms })
    expect(cluster.first(A, 'quorum_lost', split_ms)).toBe(split_ms)
    expect(cluster.node(A).role).toBe('electing')
    cluster.run(split_ms + 30_000, () => expect(cluster.serving([A])).toEqual([]))
    expect(cluster.first(A, 'election_waits_for_quorum', split_ms)).toBeDefined()
  })

  it('the majority side elects only after fence_ms, and only one node serves at any time', () => {
    const cluster = threeWithServerA()
    const split_ms = cluster.now_ms
    cluster.split([A], [B, C])
    cluster.run(split_ms + 10_000, () => expect(cluster.serving().length).toBeLessThanOrEqual(1))
    const elected_ms = cluster.first(B, 'elected', split_ms)
    expect(elected_ms).toBeDefined()
    expect(elected_ms! - split_ms).toBeGreaterThanOrEqual(FENCE_MS)
    expect(cluster.first(B, 'election_waits_for_quorum', split_ms)).toBe(split_ms)
    expect(cluster.node(B).role).toBe('server')
    expect(cluster.node(C).server).toBe(B)
  })

  it('lacksMajority (the front door refuses under minority: refuse) is true on the minority side only, until the heal', () => {
    const cluster = threeWithServerA()
    expect(cluster.nodes.map((n) => n.lacksMajority)).toEqual([false, false, false])
    cluster.split([C], [A, B])
    expect(cluster.nodes.map((n) => n.lacksMajority)).toEqual([false, false, true])
    cluster.heal()
    cluster.run(cluster.now_ms + 2000)
    expect(cluster.node(C).lacksMajority).toBe(false)
    // Where both sides may serve (helper), no side ever lacks one.
    const helper = makeNode(A, 50)
    expect(helper.lacksMajority).toBe(false)
  })

  it('a minority candidate never claims', () => {
    const cluster = threeWithServerA()
    const split_ms = cluster.now_ms
    cluster.split([C], [A, B])
    cluster.run(split_ms + 30_000, () => expect(cluster.serving([C])).toEqual([]))
    expect(cluster.node(C).role).toBe('electing')
    expect(cluster.node(A).role).toBe('server')
  })

  it('a 2-node federation has no server while split (availability is the price), one after the heal', () => {
    const cluster = new Cluster([
      [A, 50],
      [B, 40],
    ])
    cluster.run(6000)
    expect(cluster.node(A).role).toBe('server')
    const split_ms = cluster.now_ms
    cluster.split([A], [B])
    expect(cluster.serving()).toEqual([])
    cluster.run(split_ms + 30_000, () => expect(cluster.serving()).toEqual([]))
    cluster.heal()
    cluster.run(cluster.now_ms + 10_000, () => expect(cluster.serving().length).toBeLessThanOrEqual(1))
    expect(cluster.serving()).toHaveLength(1)
    expect(cluster.nodes.map((n) => n.server)).toEqual([A, A])
  })

  it('leave on the server: the named successor claims once the supporters moved to it, never alongside', () => {
    const cluster = threeWithServerA()
    const leave_ms = cluster.now_ms
    cluster.handle(cluster.node(A), { type: 'leave', now_ms: leave_ms })
    cluster.run(leave_ms + 10_000, () => expect(cluster.serving().length).toBeLessThanOrEqual(1))
    expect(cluster.node(B).role).toBe('server')
    expect(cluster.node(C).server).toBe(B)
    expect(cluster.node(A).role).toBe('leaving')
    // Support moved straight from the leaving server to its successor: no fence_ms wait.
    expect(cluster.first(B, 'elected', leave_ms)! - leave_ms).toBeLessThan(FENCE_MS)
  })

  it('a restarted node remembers the members it knew and does not serve alone', () => {
    const config = { ...DEFAULT_CORE_CONFIG, id: A, priority: 50, merge_policy: 'refuse-to-split' as const }
    const restarted = new NodeCore({ config, now_ms: 0, members: [B, C] })
    for (let t = 0; t <= 20_000; t += TICK_MS) restarted.handle({ type: 'tick', now_ms: t })
    expect(restarted.role).toBe('electing')
  })

  it('a node that lost its members learns the size from a peer: 2 votes of 5 members are no majority', () => {
    const config = { ...DEFAULT_CORE_CONFIG, id: A, priority: 50, merge_policy: 'refuse-to-split' as const }
    const roles = (peer_members: number) => {
      const amnesiac = new NodeCore({ config, now_ms: 0 })
      const seen = new Set<string>()
      for (let t = 0; t <= 20_000; t += TICK_MS) {
        const msg = state('electing', { priority: 10, vote: t >= FENCE_MS ? A : null, members: peer_members })
        amnesiac.handle({ type: 'message', from: B, msg, now_ms: t })
        amnesiac.handle({ type: 'tick', now_ms: t })
        seen.add(amnesiac.role)
      }
      return seen
    }
    expect(roles(5).has('restoring')).toBe(false)
    // The same two votes are a majority of 3: the size, not the votes, held the claim back.
    expect(roles(3).has('restoring')).toBe(true)
  })
})
