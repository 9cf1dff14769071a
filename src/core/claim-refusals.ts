import type { NodeId, PeerInfo } from './types.ts'

/** What the refusal rule reads of its node (NodeCore implements it). */
export interface ClaimRefusalsHost {
  now_ms(): number
  join_wait_ms: number
  peers(): PeerInfo[]
  peer(id: NodeId): PeerInfo | undefined
  /** Planted bugs: the formation rule, and the majority rule, switched off. */
  formationRule: boolean
  majorityRule: boolean
}

/**
 * Refusals naming a node the claimant cannot reach (issue 24). Such a refusal was ignored (the partition
 * rule: the claimant's side keeps its server until a heal merges the two), and that made two servers
 * where no partition was: at formation, a node admitted late (load 30: node-1 claimed, node-3 and
 * node-4 refused it for node-0, which node-1 had never heard) and later a claimant that falsely suspects
 * a busy server its peers still follow. A claim is now given up, and the claimant waits, when
 * - formation: this node has not followed or served a server in this run yet, and one refusal names
 *   a node it never heard or cannot reach; or
 * - later: a strict majority of its reachable peers refused it naming nodes it cannot reach.
 * The wait ends when the awaited node is reached (the election then ranks it, or follows it serving),
 * when no reachable peer follows it any more (an awaited server the refusers followed), or after
 * 3 x join_wait_ms from the first give-up. After that bound, until this node follows a server or
 * serves, such refusals are ignored again: both sides of a real partition (with a bridge node that
 * refuses) still serve, only later.
 */
export class ClaimRefusals {
  /** No server followed or served in this run yet: the run's formation (its first election). */
  private formation = true
  private readonly refusers = new Set<NodeId>()
  /** Waiting for `awaited` (a server if the refusers followed it) until `until_ms`; 0: no give-up yet. */
  private until_ms = 0
  private awaited: NodeId | null = null
  private awaited_server = false

  constructor(private readonly host: ClaimRefusalsHost) {}

  /** A claim was made: count its refusals afresh. */
  claimed(): void {
    this.refusers.clear()
  }

  /** This node follows a live server or serves: the next give-up starts a new bounded wait. */
  settled(): void {
    this.formation = false
    this.until_ms = 0
    this.awaited = null
  }

  /** `from` refused this node's claim naming `better`, which this node cannot reach: give the claim up? */
  givesUp(from: PeerInfo, better: NodeId): boolean {
    const now = this.host.now_ms()
    if (this.until_ms !== 0 && now >= this.until_ms) return false
    this.refusers.add(from.id)
    const reachable = this.host.peers().filter((p) => p.reachable).length
    const formation = this.formation && this.host.formationRule
    const majority = this.host.majorityRule && 2 * this.refusers.size > reachable
    if (!formation && !majority) return false
    if (this.until_ms === 0) this.until_ms = now + 3 * this.host.join_wait_ms
    this.awaited = better
    // The refuser follows the node it names: a live server (in its view), not a contender.
    this.awaited_server = from.server === better
    return true
  }

  /** A candidate with no server does not elect while it waits for the node the refusals named. */
  waiting(): boolean {
    if (this.awaited === null || this.host.now_ms() >= this.until_ms) return false
    const awaited = this.host.peer(this.awaited)
    if (awaited?.reachable) return false
    if (!this.awaited_server) return true
    const id = this.awaited
    return this.host.peers().some((p) => p.reachable && p.server === id)
  }
}
