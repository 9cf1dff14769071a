import { z } from 'zod'
import { assert } from './assert.ts'
import type { NodeId } from './types.ts'

/**
 * Type0 (no state, Table 1 of the design; service-type.ts): `replicas` nodes serve at once and nothing
 * is ever merged. Pure, like NodeCore: no I/O, no clock, no randomness; `handle(event)` returns effects.
 * The runtime runs it for a `type0` service whose manifest sets `replicas` (runtime/replica-runner.ts);
 * the simulator (test/sim/replicas.test.ts) checks it under faults.
 *
 * A node serves while it is among the `replicas` best eligible nodes it can reach, itself included
 * (priority, then the smaller id: the static ranking). A replica that fails (service exited, node gone)
 * leaves that set, so the next candidate enters it: it is replaced from the candidates, with nothing to
 * restore. Each side of a split runs up to `replicas`; at the heal the ranking is one again and the
 * surplus stops: there is no state, so nothing to merge.
 */

/** Known bugs that tests plant in ReplicaCore to prove the simulator's Type0 checks are not vacuous. */
export const REPLICA_PLANTED_BUGS = [
  /** A serving replica that meets another one it could not reach before (a heal) merges with it. */
  'type0-merges-on-heal',
  /** A replica that fails is never replaced: peers stay in the view until they say otherwise. */
  'type0-no-replacement',
] as const
export type ReplicaPlantedBug = (typeof REPLICA_PLANTED_BUGS)[number]

export interface ReplicaConfig {
  id: NodeId
  priority: number
  /** How many nodes serve at once (the manifest's `replicas`). */
  replicas: number
  heartbeat_interval_ms: number
  /** A peer not heard from for this long is no longer counted (the overlay's suspicion, as a bound). */
  suspect_ms: number
  /** After its service exits, a node is not eligible for this long (a crash loop does not hold a slot). */
  failed_cooldown_ms: number
  planted_bug?: ReplicaPlantedBug
}

export interface ReplicaState {
  type: 'replica-state'
  priority: number
  eligible: boolean
  serving: boolean
}

const replica_state_schema = z
  .object({
    type: z.literal('replica-state'),
    priority: z.number().finite(),
    eligible: z.boolean(),
    serving: z.boolean(),
  })
  .strict()

/** Checks a `replica-state` control message from a peer (the overlay's validate step). */
export function validateReplicaState(
  input: unknown,
): { ok: true; value: ReplicaState } | { ok: false; reason: string } {
  const result = replica_state_schema.safeParse(input)
  if (result.success) return { ok: true, value: result.data }
  const issue = result.error.issues[0]
  const where = issue && issue.path.length > 0 ? issue.path.join('.') : 'message'
  return { ok: false, reason: `${where}: ${issue?.message ?? 'invalid'}` }
}

export type ReplicaEvent =
  | { type: 'tick'; now_ms: number }
  | { type: 'message'; from: NodeId; msg: ReplicaState; now_ms: number }
  | { type: 'peer-down'; peer: NodeId; now_ms: number }
  | { type: 'service-exited'; now_ms: number }

export type ReplicaEffect =
  | { type: 'broadcast'; msg: ReplicaState }
  | { type: 'start-service' }
  | { type: 'stop-service'; reason: string }
  /** Never from a correct ReplicaCore: the simulator's never-a-merge check fails on it. */
  | { type: 'run-merge'; with: NodeId }

export interface Ranked {
  id: NodeId
  priority: number
}

/** The `replicas` best of `nodes`: higher priority first, then the smaller id. */
export function replicaSet(nodes: readonly Ranked[], replicas: number): NodeId[] {
  assert(Number.isInteger(replicas) && replicas >= 1, 'replicas must be a positive integer')
  return [...nodes]
    .sort((a, b) => b.priority - a.priority || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
    .slice(0, replicas)
    .map((n) => n.id)
}

interface PeerView {
  priority: number
  eligible: boolean
  serving: boolean
  heard_ms: number
}

export class ReplicaCore {
  private readonly peers = new Map<NodeId, PeerView>()
  private serving_ = false
  private failed_until_ms = Number.NEGATIVE_INFINITY
  private next_heartbeat_ms: number
  private effects: ReplicaEffect[] = []

  constructor(
    private readonly config: ReplicaConfig,
    now_ms: number,
  ) {
    assert(config.replicas >= 1, 'replicas must be at least 1')
    assert(config.suspect_ms > config.heartbeat_interval_ms, 'suspect_ms must exceed the heartbeat')
    this.next_heartbeat_ms = now_ms
  }

  get id(): NodeId {
    return this.config.id
  }

  get serving(): boolean {
    return this.serving_
  }

  /** The replica set as this node sees it now (itself included while eligible). */
  view(now_ms: number): NodeId[] {
    const nodes: Ranked[] = []
    if (this.eligible(now_ms)) nodes.push({ id: this.id, priority: this.config.priority })
    for (const [id, p] of this.peers) if (p.eligible && this.reachable(p, now_ms)) nodes.push({ id, ...p })
    return replicaSet(nodes, this.config.replicas)
  }

  /**
   * The nodes that serve now as this node knows it: itself while serving, and every reachable peer
   * whose newest state says it serves (the front door spreads clients among these).
   */
  servers(now_ms: number): NodeId[] {
    const out: NodeId[] = this.serving_ ? [this.id] : []
    for (const [id, p] of this.peers) if (p.serving && this.reachable(p, now_ms)) out.push(id)
    return out
  }

  handle(event: ReplicaEvent): ReplicaEffect[] {
    this.effects = []
    const now_ms = event.now_ms
    switch (event.type) {
      case 'tick':
        if (now_ms >= this.next_heartbeat_ms) {
          this.next_heartbeat_ms = now_ms + this.config.heartbeat_interval_ms
          this.broadcast(now_ms)
        }
        break
      case 'message': {
        const before = this.peers.get(event.from)
        const was_reachable = before !== undefined && this.reachable(before, now_ms)
        const { priority, eligible, serving } = event.msg
        this.peers.set(event.from, { priority, eligible, serving, heard_ms: now_ms })
        if (
          this.config.planted_bug === 'type0-merges-on-heal' &&
          this.serving_ &&
          serving &&
          before !== undefined &&
          !was_reachable
        )
          this.effects.push({ type: 'run-merge', with: event.from })
        break
      }
      case 'peer-down':
        if (this.config.planted_bug !== 'type0-no-replacement') this.peers.delete(event.peer)
        break
      case 'service-exited':
        // The service is gone: this node gives up its slot for a while, so a candidate takes it.
        this.failed_until_ms = now_ms + this.config.failed_cooldown_ms
        if (this.serving_) {
          this.serving_ = false
          this.broadcast(now_ms)
        }
        break
    }
    this.reconcile(now_ms)
    this.checkInvariants(now_ms)
    return this.effects
  }

  private eligible(now_ms: number): boolean {
    return now_ms >= this.failed_until_ms
  }

  private reachable(p: PeerView, now_ms: number): boolean {
    return this.config.planted_bug === 'type0-no-replacement' || now_ms - p.heard_ms < this.config.suspect_ms
  }

  /** Serve exactly while in the replica set of this node's view. */
  private reconcile(now_ms: number): void {
    const should = this.view(now_ms).includes(this.id)
    if (should === this.serving_) return
    this.serving_ = should
    this.effects.push(should ? { type: 'start-service' } : { type: 'stop-service', reason: 'not a replica' })
    this.broadcast(now_ms)
  }

  private broadcast(now_ms: number): void {
    this.effects.push({
      type: 'broadcast',
      msg: {
        type: 'replica-state',
        priority: this.config.priority,
        eligible: this.eligible(now_ms),
        serving: this.serving_,
      },
    })
  }

  private checkInvariants(now_ms: number): void {
    assert(!this.serving_ || this.eligible(now_ms), 'a failed node does not serve')
    assert(this.view(now_ms).length <= this.config.replicas, 'a view holds at most `replicas` nodes')
  }
}
