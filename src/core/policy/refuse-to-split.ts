import type { StateMessage } from '../messages.ts'
import type { NodeId, SnapshotRef } from '../types.ts'
import type { SplitHost, SplitPolicy } from './split.ts'

/**
 * refuse-to-split (`merge_policy`): every node supports one node at a time, named in its states
 * (`vote`). Support changes pass through a gap of `fence_ms` supporting nobody (except along a
 * hand-over), and a supporter counts for `fence_ms / 2` after its state: no node is ever counted by two
 * nodes at once, so two strict majorities of support (two servers) cannot exist at the same time. A
 * serving node that no longer has one stops at once; a claimant without one waits.
 */
export class RefuseToSplit implements SplitPolicy {
  readonly ranksAll = true
  readonly reviewsEachTick = true
  readonly repeatsHandover = true
  /** Every node heard of, in this run or an earlier one. */
  private readonly members_ = new Set<NodeId>()
  /** The node this one supports (serving: itself; candidate: its server; electing: its vote). */
  private support_: NodeId | null = null
  /** Since when this node supports nobody (a restart starts a gap: its old support is unknown). */
  private gap_since_ms: number
  /** A leaving server named its successor, so its supporters move there without a gap. */
  private direct_switch: { from: NodeId; to: NodeId } | null = null
  /** This node was named successor; it claims once a majority supports it. */
  private pending_handover: { snapshot: SnapshotRef; source: NodeId } | null = null
  /** 'election_waits_for_quorum' was logged for this election. */
  private waits_logged = false

  constructor(
    private readonly host: SplitHost,
    members: NodeId[],
    private readonly fence_ms: number,
    /** false only with the planted bug `no-support-gap`. */
    private readonly support_gap: boolean,
  ) {
    this.gap_since_ms = host.now_ms()
    for (const id of members) if (id !== host.id) this.members_.add(id)
  }

  memberHeard(id: NodeId): boolean {
    if (this.members_.has(id)) return false
    this.members_.add(id)
    return true
  }

  members(): NodeId[] {
    return [...this.members_]
  }

  electionStarted(): void {
    this.direct_switch = null
    this.pending_handover = null
    this.waits_logged = false
  }

  mayClaim(): boolean {
    if (this.hasQuorum(this.host.id)) return true
    if (!this.waits_logged) {
      this.waits_logged = true
      this.host.timeline('election_waits_for_quorum', this.quorumFields())
    }
    return false
  }

  handoverSeen(from: NodeId, to: NodeId): void {
    // Only straight from the leaving server: a second hand-over (the first successor went silent) must
    // not move support away from a successor that may already count it.
    this.direct_switch = this.support_ === from ? { from, to } : null
  }

  defersHandoverClaim(snapshot: SnapshotRef, source: NodeId): boolean {
    // Claim once the leaving server's supporters, told of the hand-over too, support this node.
    this.pending_handover = { snapshot, source }
    return true
  }

  afterEvent(): void {
    const host = this.host
    this.updateSupport()
    const pending = this.pending_handover
    if (pending !== null && host.handoverTo() === host.id && this.hasQuorum(host.id)) {
      this.pending_handover = null
      host.claimHandover(pending.snapshot, pending.source)
      this.updateSupport()
    }
    if (!host.mustHoldMajority()) return
    if (this.hasQuorum(host.id)) return
    host.timeline('quorum_lost', {
      ...this.quorumFields(),
      // Changes not yet replicated are copied aside by the runtime (kept/, see HELPERS.md, merge_policy).
      state: 'copied aside after the stop',
    })
    host.stepDown()
    this.updateSupport()
  }

  stateFields(msg: StateMessage): void {
    msg.vote = this.support_
    msg.members = this.ownMemberCount()
  }

  lacksMajority(): boolean {
    let reachable = 1
    for (const p of this.host.peers()) if (p.reachable && p.role !== 'leaving') reachable += 1
    return 2 * reachable <= this.memberCount()
  }

  /**
   * Members: this node and every node heard of that has not left, or more if a reachable peer counts
   * more (a node restarted without its persisted members learns the size; counting more is only
   * ever safer).
   */
  private memberCount(): number {
    let n = this.ownMemberCount()
    for (const p of this.host.peers()) if (p.reachable && p.role !== 'leaving') n = Math.max(n, p.members)
    return n
  }

  /** What this node reports: its own view only, so counts never feed each other after a node left. */
  private ownMemberCount(): number {
    let n = 1
    for (const id of this.members_) if (this.host.peer(id)?.role !== 'leaving') n += 1
    return n
  }

  /** Supporters of `id`: this node if it supports it, and peers whose state naming it is fresh. */
  private supporters(id: NodeId): number {
    let n = this.support_ === id ? 1 : 0
    const now_ms = this.host.now_ms()
    for (const p of this.host.peers()) {
      if (!p.reachable || p.role === 'leaving' || p.vote !== id) continue
      if (now_ms - p.vote_heard_ms < this.fence_ms / 2) n += 1
    }
    return n
  }

  private hasQuorum(id: NodeId): boolean {
    return 2 * this.supporters(id) > this.memberCount()
  }

  private quorumFields(): Record<string, unknown> {
    return {
      supporters: this.supporters(this.host.id),
      members: this.memberCount(),
      fence_ms: this.fence_ms,
    }
  }

  private updateSupport(): void {
    const host = this.host
    const desired = host.wouldSupport()
    if (desired === this.support_) return
    const direct = this.direct_switch
    if (!this.support_gap || (direct !== null && this.support_ === direct.from && desired === direct.to)) {
      this.support_ = desired
      this.direct_switch = null
      host.broadcastState()
      return
    }
    const now_ms = host.now_ms()
    if (this.support_ !== null) {
      this.support_ = null
      this.gap_since_ms = now_ms
      host.broadcastState()
    }
    if (desired !== null && now_ms - this.gap_since_ms >= this.fence_ms) {
      this.support_ = desired
      host.broadcastState()
    }
  }
}
