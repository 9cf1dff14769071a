import { assert } from './assert.ts'
import { ClaimRefusals } from './claim-refusals.ts'
import { type CoreConfig, checkCoreConfig } from './config.ts'
import { type DeadForkHost, DeadForks } from './dead-fork.ts'
import { HandOver, type Handover, type HandoverHost } from './handover.ts'
import type { CoreHost, RoleHost } from './host.ts'
import type { CoreEffect, CoreEvent, PeerDownCause, TimelineName } from './io.ts'
import { closure, covers, mergedSegments, nextSnapshotRef } from './lineage.ts'
import { HealMerge, type HealMergeHost, mergeWinner } from './merge.ts'
import type {
  ClaimMessage,
  ControlMessage,
  HandoverMessage,
  RefuseMessage,
  StateMessage,
  StoredMessage,
} from './messages.ts'
import { type BugSeam, plantedSeam } from './planted-bugs.ts'
import { RefuseToSplit } from './policy/refuse-to-split.ts'
import { AllowSplit, type SplitHost, type SplitPolicy } from './policy/split.ts'
import {
  best,
  type CapacityNeed,
  type Contender,
  capacityFlags,
  capacityNeed,
  compareContenders,
  compareSnapshots,
} from './ranking.ts'
import type { Health, NodeId, PeerInfo, Role, Segment, SnapshotRef } from './types.ts'

/** What a node keeps across restarts (the runtime persists it atomically on `persist`). */
export interface PersistedState {
  term: number
}

export interface NodeStartOptions {
  config: CoreConfig
  now_ms: number
  persisted?: PersistedState
  /** Newest complete snapshot already in the local store. */
  held?: SnapshotRef | null
  /** Every snapshot in the local store (or at least the heads of its lineages): dead forks are found among them. */
  stored?: SnapshotRef[]
  load?: number
  /** Free disk for the state (bytes); absent: not measured (taken as enough). */
  room_bytes?: number
  /** Nodes heard of in an earlier run (refuse-to-split: a restarted node still knows the majority's size). */
  members?: NodeId[]
}

interface Election {
  deadline_ms: number
  excluded: Set<NodeId>
  /** A node that refused this node's claim as outranking it: wait for it until the deadline. */
  wait_for: NodeId | null
  /** The best contender this node sees (refuse-to-split: whom it votes for). */
  top: NodeId | null
}

interface Restore {
  snapshot: SnapshotRef | null
  failed: Set<string>
}

/**
 * The node state machine of DESIGN.md: roles, terms, election, escalation, hand-over and merge
 * decisions. Pure: `handle(event)` returns the effects to carry out; no I/O, clock or randomness.
 */
export class NodeCore {
  readonly config: CoreConfig
  readonly id: NodeId
  /** Where a planted bug (tests only) changes this core; the correct core without one. */
  private readonly bugs: BugSeam
  private role_: Role = 'candidate'
  /** The term this node serves in while it serves; otherwise the highest term seen. */
  private term_: number
  /** Highest term seen anywhere; a claim always exceeds it. */
  private max_term_: number
  /** The server this node follows; itself while restoring, serving or handing over. */
  private server_: NodeId | null = null
  private readonly peers_ = new Map<NodeId, PeerInfo>()
  /** Newest complete snapshot in the local store. */
  private held_: SnapshotRef | null
  /** Lineage head while serving: newest snapshot made, or the one restored from. */
  private head_: SnapshotRef | null = null
  private load_: number
  private room_bytes_: number | null
  private health_: Health = 'unknown'
  private joined_at_ms: number
  /** When a node never heard of before last appeared: the first election waits for a quiet spell. */
  private last_new_peer_ms: number
  /** No election was started yet in this run (the first one waits for the peers that are coming). */
  private first_election = true
  private election: Election | null = null
  private restore: Restore | null = null
  /** The loser's side of a partition heal (merge.ts). */
  private readonly heal: HealMerge
  /** Lineage heads in the local store and the dead-fork merge a candidate runs (dead-fork.ts). */
  private readonly dead_forks: DeadForks
  /** Serving: forks merged into the service since its last snapshot's lineage (carried by the next ones). */
  private merged_in_: Segment[] = []
  /** Refusals naming a node this claimant cannot reach (claim-refusals.ts). */
  private readonly refusals: ClaimRefusals
  /** Leave and preempt on the serving side (handover.ts); `handover` is its state. */
  private readonly hand: HandOver
  /** Successor named by a leaving server; its claim is accepted without ranking. */
  private handover_to: NodeId | null = null
  private snapshot_in_flight: string | null = null
  /** While restoring: grows with every `restore-progress`; peers see it in states. */
  private restore_progress_ = 0
  /** The leaving server whose hand-over this node's current claim answers (it may name another). */
  private claimed_handover_from: NodeId | null = null
  private next_heartbeat_ms: number
  private next_snapshot_ms = 0
  /**
   * Output commit: `next_snapshot_ms` as it was before the capture in flight started. A capture for
   * output that turns out covered stored nothing, so the interval's snapshot stays due when it was.
   */
  private next_snapshot_before_ms = 0
  private restarts_ms: number[] = []
  private ineligible_until_ms = 0
  private answering_reported = false
  private effects: CoreEffect[] = []
  private now_ms: number
  /** The merge policy's part in election and serving (refuse-to-split: a majority's support). */
  private readonly split: SplitPolicy
  /** The process is exiting (`terminate`): every later event is ignored. */
  private terminated = false
  /** Output commit: output arrived after the capture in flight froze the service; the next one starts when it is stored. */
  private output_waiting = false
  /** Output commit: this server's own snapshots (this term) not yet released, and who stored each. */
  private readonly confirmations = new Map<string, { snapshot: SnapshotRef; holders: Set<NodeId> }>()
  /** Output commit: seq of the newest own snapshot (this term) whose output was released. */
  private released_seq = 0

  constructor(options: NodeStartOptions) {
    checkCoreConfig(options.config)
    this.config = options.config
    this.id = options.config.id
    this.bugs = plantedSeam(options.config.planted_bug)
    this.term_ = options.persisted?.term ?? 0
    this.max_term_ = this.term_
    this.held_ = options.held ?? null
    this.load_ = options.load ?? 0
    this.room_bytes_ = options.room_bytes ?? null
    this.now_ms = options.now_ms
    this.joined_at_ms = options.now_ms
    this.last_new_peer_ms = options.now_ms
    this.next_heartbeat_ms = options.now_ms
    this.split =
      options.config.merge_policy === 'refuse-to-split'
        ? new RefuseToSplit(
            this.splitHost(),
            options.members ?? [],
            options.config.fence_ms,
            this.bugs.supportGap,
          )
        : new AllowSplit()
    this.dead_forks = new DeadForks(this.deadForkHost())
    this.heal = new HealMerge(this.healMergeHost())
    this.hand = new HandOver(this.handoverHost())
    this.refusals = new ClaimRefusals({
      now_ms: () => this.now_ms,
      join_wait_ms: this.config.join_wait_ms,
      peers: () => this.peers(),
      peer: (id) => this.peers_.get(id),
      formationRule: this.bugs.formationRefusals,
      majorityRule: this.bugs.majorityRefusals,
    })
    for (const ref of options.stored ?? []) this.dead_forks.addFork(ref)
    if (this.held_) this.dead_forks.addFork(this.held_)
  }

  /** A serving node that stopped its service to hand over (the successor may already restore). */
  get handingOver(): boolean {
    return this.handover !== null
  }

  get role(): Role {
    return this.role_
  }
  get term(): number {
    return this.term_
  }
  /** Highest term this node has seen; what it persists. */
  get maxTerm(): number {
    return this.max_term_
  }
  get server(): NodeId | null {
    return this.server_
  }
  get held(): SnapshotRef | null {
    return this.held_
  }
  get head(): SnapshotRef | null {
    return this.head_
  }
  /** Lineage heads held locally that no other held snapshot's closure covers. */
  get forks(): readonly SnapshotRef[] {
    return this.dead_forks.forks
  }

  /**
   * A serving node's state holds `ref` (its lineage or a fork merged into it, including merges since its
   * last snapshot): a dead fork offered again is answered without applying it (one merge per fork).
   */
  holdsFork(ref: SnapshotRef): boolean {
    if (this.role_ !== 'server') return false
    return covers([...closure(this.head_), ...this.merged_in_], ref)
  }
  get health(): Health {
    return this.health_
  }
  /** refuse-to-split: this node's side of a split has no majority, so no server (policy/split.ts). */
  get lacksMajority(): boolean {
    return this.split.lacksMajority()
  }
  peers(): PeerInfo[] {
    return [...this.peers_.values()]
  }

  handle(event: CoreEvent): CoreEffect[] {
    assert(event.now_ms >= this.now_ms, `time went backwards: ${event.now_ms} < ${this.now_ms}`)
    this.now_ms = event.now_ms
    this.effects = []
    if (this.terminated) return this.effects
    switch (event.type) {
      case 'tick':
        this.onTick()
        break
      case 'peer-up':
        this.peer(event.peer).reachable = true
        this.broadcastState()
        break
      case 'peer-down':
        this.onPeerDown(event.peer, event.reason)
        break
      case 'message':
        this.onMessage(event.from, event.msg)
        break
      case 'driver':
        this.onDriver(event.kind)
        break
      case 'snapshot-stored':
        this.onSnapshotStored(event.snapshot)
        break
      case 'snapshot-failed':
        if (this.snapshot_in_flight === event.id) this.snapshot_in_flight = null
        if (this.handover && this.handover.final === null) this.takeFinalSnapshot()
        break
      case 'restore-done':
        this.onRestoreDone(event.ok, event.snapshot, event.reason)
        break
      case 'restore-progress':
        if (this.role_ === 'restoring') this.restore_progress_ += 1
        break
      case 'merge-done':
        this.onMergeDone(event.ok, event.winner, event.reason)
        break
      case 'merged':
        this.onMerged(event.from, event.head ?? null)
        break
      case 'leave':
        this.onLeave()
        break
      case 'output-waiting':
        this.onOutputWaiting()
        break
      case 'snapshot-covered':
        this.onSnapshotCovered(event.id)
        break
      case 'snapshot-now':
        if (this.role_ === 'server' && this.handover === null && this.snapshot_in_flight === null) {
          this.takeSnapshot(false)
        }
        break
      case 'load':
        assert(event.load >= 0, 'load must be >= 0')
        this.load_ = event.load
        if (event.room_bytes !== undefined) this.room_bytes_ = event.room_bytes
        break
      case 'joined':
        this.joined_at_ms = this.now_ms
        break
      case 'terminate':
        this.onTerminate(event.reason)
        return this.effects
    }
    this.split.afterEvent()
    this.checkInvariants()
    return this.effects
  }

  // ---------------------------------------------------------------- time

  private onTick(): void {
    const now = this.now_ms
    const handover = this.handover
    if (
      this.split.repeatsHandover &&
      now >= this.next_heartbeat_ms &&
      handover?.successor &&
      handover.final
    ) {
      // The successor claims only once a majority supports it: repeat the news a lost message withheld.
      const msg: HandoverMessage = {
        type: 'handover',
        term: this.term_,
        to: handover.successor,
        snapshot: handover.final,
      }
      this.effects.push({ type: 'broadcast', msg })
    }
    if (now >= this.next_heartbeat_ms) this.broadcastState()
    if (
      this.role_ === 'candidate' &&
      this.server_ === null &&
      this.joinWaitOver(now) &&
      !this.refusals.waiting()
    ) {
      this.startElection(new Set())
    }
    this.considerSilentLeaver(now)
    if (this.role_ === 'electing' && this.election && now >= this.election.deadline_ms) {
      this.election.deadline_ms = now + this.config.election_timeout_ms
      this.election.wait_for = null
      this.evaluateElection()
    } else if (this.role_ === 'electing' && this.split.reviewsEachTick) {
      // Supports age and gaps end with time alone: look again at every tick.
      this.evaluateElection()
    }
    if (this.role_ === 'server' && this.handover === null) {
      if (now >= this.next_snapshot_ms && this.snapshot_in_flight === null && this.health_ !== 'down') {
        this.takeSnapshot(false)
      }
      if (this.config.preempt) this.considerPreempt()
    }
    if (this.role_ === 'candidate') this.dead_forks.considerDeadFork()
    this.heal.onTick(now)
    this.hand.onTick(now)
  }

  /**
   * The server this node follows handed over and went (or fell silent). With no successor named, it is
   * gone after `handover_timeout_ms` of silence. With a successor named, this node waits for it (it
   * follows it once it hears it serve) as long as the successor or a peer that follows it says it lives:
   * a rejoined successor may not have reached this node yet (leave.slow: 5 s), and a claim of its own
   * would be a second server. Nobody vouching for it for `handover_timeout_ms`: elect.
   */
  private considerSilentLeaver(now: number): void {
    if (this.role_ !== 'candidate' || this.server_ === null) return
    const leaver = this.peers_.get(this.server_)
    if (leaver === undefined || leaver.reachable || leaver.role !== 'leaving') return
    const successor = this.handover_to
    if (successor !== null && this.successorVouched(successor)) return
    if (now - leaver.last_heard_ms < this.config.handover_timeout_ms) return
    this.timeline('server_suspected', { server: leaver.id, reason: 'silent in its hand-over' })
    this.startElection(new Set([leaver.id]))
  }

  /** The named successor restores (progressing) or serves, as it says itself or a peer following it says. */
  private successorVouched(successor: NodeId): boolean {
    const s = this.peers_.get(successor)
    if (s?.reachable && s.role === 'server') return true
    if (this.progressing(successor)) return true
    return this.peers().some((p) => p.reachable && p.id !== successor && p.server === successor)
  }

  /**
   * A node elects once it waited `join_wait_ms` to hear of a server. The first election of a run also
   * waits until no new node appeared for `join_wait_ms` and every reachable node's state (its priority)
   * arrived and no reachable node follows a server not yet reached, at most 3 x `join_wait_ms`: nodes
   * started together appear one by one as they boot, and the first to come up must not take the service
   * before the higher-priority ones are heard; a node rejoining a busy federation must not claim before
   * the server admits it.
   */
  private joinWaitOver(now: number): boolean {
    const waited = now - this.joined_at_ms
    if (waited < this.config.join_wait_ms) return false
    // A reachable peer follows a server this node has not reached yet (a busy server admits a rejoining
    // node late; hyperswarm finds peers one by one, leave.slow: 5 s): that server lives, a claim would
    // be a second one. No bound: the peer's next state says so when it loses that server.
    if (this.bugs.waitsForUnreachedServer && this.peerFollowsUnreached()) return false
    if (!this.first_election || waited >= 3 * this.config.join_wait_ms) return true
    if (now - this.last_new_peer_ms < this.config.join_wait_ms) return false
    // A node that outranks this one was heard and its connection dropped as the federation formed
    // (joint start at load 25: node-1 lost node-0 for 2.8 s and claimed beside it): wait for it.
    const me = this.self()
    if (
      this.peers().some(
        (p) => !p.reachable && compareContenders(this.config.strategy, this.contender(p), me) > 0,
      )
    )
      return false
    // Every reachable node's state arrived.
    return this.peers().every((p) => !p.reachable || p.priority !== Number.NEGATIVE_INFINITY)
  }

  /**
   * A reachable candidate follows a server (not itself, not this node) that this node cannot reach, or
   * that is handing over: its successor is named by the leaver, not elected here.
   */
  private peerFollowsUnreached(): boolean {
    return this.peers().some((p) => {
      if (!p.reachable || p.role !== 'candidate' || p.server === null) return false
      if (p.server === p.id || p.server === this.id) return false
      const server = this.peers_.get(p.server)
      return server?.reachable !== true || server.role === 'leaving'
    })
  }

  // ---------------------------------------------------------------- peers and messages

  private peer(id: NodeId): PeerInfo {
    assert(id !== this.id, 'a node is not its own peer')
    let info = this.peers_.get(id)
    if (!info) {
      info = {
        id,
        reachable: true,
        role: 'candidate',
        term: 0,
        priority: Number.NEGATIVE_INFINITY,
        load: 0,
        room_bytes: null,
        site: null,
        server: null,
        snapshot: null,
        head: null,
        health: 'unknown',
        last_heard_ms: this.now_ms,
        vote: null,
        vote_heard_ms: 0,
        members: 0,
        ineligible_until_ms: 0,
        progress: 0,
        progress_ms: 0,
      }
      this.peers_.set(id, info)
      this.last_new_peer_ms = this.now_ms
      if (this.split.memberHeard(id))
        this.effects.push({ type: 'persist', term: this.max_term_, members: this.split.members() })
    }
    return info
  }

  private onPeerDown(id: NodeId, reason: PeerDownCause): void {
    const info = this.peer(id)
    if (!info.reachable) return
    info.reachable = false
    const busy_leaver = reason === 'suspected' && info.role === 'leaving' && this.bugs.waitsForLeaver
    // The leaver named a successor (not this node, which then restores) and went: wait for it (onTick).
    const named_successor =
      info.role === 'leaving' && this.handover_to !== null && this.bugs.waitsForSuccessor
    if (this.server_ === id && this.role_ === 'candidate' && (busy_leaver || named_successor)) {
      // A server handing over said so, and then stopped its service and took its final snapshot: a busy
      // moment whose silence a detector misreads (leave.slow under load: a candidate claimed against the
      // hand-over and the leaver merged into it). Only a verdict from the connection, its `leaving`
      // message, or silence for `handover_timeout_ms` (onTick) end the wait.
      return
    }
    if (this.server_ === id && this.role_ !== 'server') {
      this.timeline('server_suspected', { server: id, reason })
      this.startElection(new Set([id]))
    } else if (this.role_ === 'electing') {
      this.evaluateElection()
    }
    if (this.heal.winner === id) this.heal.abandonMerge('winner unreachable')
    if (this.handover?.successor === id) {
      this.handover.tried.add(id)
      this.handover.successor = null
      this.nameSuccessor()
    }
  }

  private onMessage(from: NodeId, msg: ControlMessage): void {
    const info = this.peer(from)
    info.reachable = true
    info.last_heard_ms = this.now_ms
    this.observeTerm(msg.term)
    switch (msg.type) {
      case 'state':
        this.onState(info, msg)
        break
      case 'claim':
        this.onClaim(info, msg)
        break
      case 'refuse':
        this.onRefuse(info, msg)
        break
      case 'resign':
        info.role = 'candidate'
        info.ineligible_until_ms = this.now_ms + this.config.resign_cooldown_ms
        if (this.server_ === from && this.role_ !== 'server') {
          this.timeline('server_suspected', { server: from, reason: 'resigned' })
          this.startElection(new Set([from]))
        }
        break
      case 'handover':
        this.onHandover(info, msg)
        break
      case 'stored':
        this.onStored(info, msg)
        break
      case 'leaving':
        info.reachable = false
        info.role = 'leaving'
        if (this.server_ === from && this.role_ !== 'server' && this.handover_to === null) {
          this.startElection(new Set([from]))
        } else if (this.role_ === 'electing') {
          this.evaluateElection()
        }
        break
      case 'merge-offer':
      case 'merge-result':
        // Merge transport belongs to the runtime; the core decided who merges and hears `merge-done`.
        break
    }
  }

  private observeTerm(term: number): void {
    if (term <= this.max_term_) return
    this.max_term_ = term
    // A serving node keeps the term of its claim: it names its lineage. It adopts the new one on stepping down.
    if (!this.serving()) this.term_ = term
    this.effects.push({ type: 'persist', term })
  }

  private serving(): boolean {
    return (
      this.role_ === 'server' ||
      this.role_ === 'restoring' ||
      this.role_ === 'merging' ||
      this.handover !== null
    )
  }

  private onState(info: PeerInfo, msg: StateMessage): void {
    const progress = msg.progress ?? 0
    const moved = info.role !== 'restoring' || info.term !== msg.term || info.progress !== progress
    if (msg.role === 'restoring' && moved) info.progress_ms = this.now_ms
    info.progress = progress
    info.role = msg.role
    info.term = msg.term
    info.priority = msg.priority
    info.load = msg.load
    info.room_bytes = msg.room_bytes ?? null
    info.site = msg.site ?? null
    info.server = msg.server
    info.snapshot = msg.snapshot
    info.head = msg.head
    info.merged_in = msg.merged ?? []
    info.health = msg.health
    info.ineligible_until_ms = msg.eligible ? 0 : Number.POSITIVE_INFINITY
    info.vote = msg.vote ?? null
    info.members = msg.members ?? 0
    info.vote_heard_ms = this.now_ms
    if (msg.role === 'server') this.onServerSeen(info)
    else if (this.server_ === info.id && (this.role_ === 'candidate' || this.role_ === 'electing')) {
      if (msg.role === 'merging' && msg.server !== null && msg.server !== this.id) {
        // Our server is merging into another after a heal: follow the winner.
        this.server_ = msg.server
      } else if (
        msg.role !== 'restoring' &&
        msg.role !== 'leaving' &&
        (this.handover_to === null || !this.successorVouched(this.handover_to))
      ) {
        // Our server restarted (faster than detection) or stepped down: it no longer serves. (A server
        // that handed over steps down once its successor serves; a successor that restores or serves, as
        // it or a peer following it says, is awaited: this node may not have reached it yet.)
        // No exclusion: if it resigned, it says so (`eligible: false`); otherwise it may win again.
        this.timeline('server_suspected', { server: info.id, reason: `now ${msg.role}` })
        this.startElection(new Set())
      }
    } else if (this.role_ === 'electing') {
      this.evaluateElection()
    }
  }

  /** A peer says it is a server. Follow it, or resolve two servers (partition heal). */
  private onServerSeen(other: PeerInfo): void {
    if (this.role_ !== 'leaving') this.refusals.settled()
    switch (this.role_) {
      case 'candidate':
      case 'electing': {
        if (this.handover_to === other.id) {
          // The hand-over is complete: from now on this server is watched like any other.
          this.handover_to = null
          this.follow(other.id)
          return
        }
        const current = this.liveServer()
        if (current && current.id !== other.id && this.mergeWinner(current, other) === current.id) return
        this.follow(other.id)
        break
      }
      case 'restoring':
        // A live server exists (a frozen one woke up, or a partition healed): it keeps the service.
        this.abortRestore(`server ${short(other.id)} is alive`)
        this.follow(other.id)
        break
      case 'server':
      case 'merging': {
        if (this.role_ === 'merging') return
        if (this.handover?.successor === other.id) {
          this.finishHandover()
          return
        }
        if (!this.bugs.stepsDownOnHeal) return
        if (this.mergeWinner(this.self(), other) === this.id) return
        this.heal.startMerge(other, 'candidate')
        break
      }
      case 'leaving':
        if (this.handover?.successor === other.id) this.finishHandover()
        else if (this.handover !== null) {
          // Another server appeared while this one hands over (a partition healed): its changes since
          // the split must reach that server before it goes, so it merges instead of handing over.
          this.handover = null
          this.heal.startMerge(other, 'exit')
        }
        break
    }
  }

  /** The peer this node follows, if it is reachable and says it serves. */
  private liveServer(): PeerInfo | undefined {
    const info = this.server_ !== null ? this.peers_.get(this.server_) : undefined
    return info?.reachable && info.role === 'server' ? info : undefined
  }

  /** Who keeps the service when two servers meet: by priority, or by newest term then priority. */
  private mergeWinner(a: { id: NodeId; priority: number; term: number }, b: PeerInfo): NodeId {
    return mergeWinner(this.config.merge_direction, a, b)
  }

  private onClaim(claimant: PeerInfo, msg: ClaimMessage): void {
    claimant.progress = 0
    claimant.progress_ms = this.now_ms
    claimant.role = 'restoring'
    claimant.term = msg.term
    claimant.priority = msg.priority
    claimant.load = msg.load
    claimant.room_bytes = msg.room_bytes ?? null
    claimant.site = msg.site ?? null
    claimant.snapshot = msg.snapshot
    claimant.server = claimant.id
    if (this.handover_to === claimant.id) {
      this.follow(claimant.id)
      return
    }
    const refuse = (better: NodeId, reason: string) => {
      const refusal: RefuseMessage = { type: 'refuse', term: this.term_, better, reason }
      this.effects.push({ type: 'send', to: claimant.id, msg: refusal })
      this.timeline('claim_refused', { claimant: claimant.id, better, reason })
    }
    if (this.handover?.successor === claimant.id) return
    if (this.role_ === 'server' || this.role_ === 'merging') {
      refuse(this.id, `server ${short(this.id)} is alive at term ${this.term_}`)
      return
    }
    if (this.role_ === 'leaving') return
    const live_server = this.liveServer()
    if (live_server && live_server.id !== claimant.id) {
      refuse(live_server.id, `server ${short(live_server.id)} is alive at term ${live_server.term}`)
      return
    }
    const claim = this.contender(claimant)
    const better = this.eligible(new Set([claimant.id])).find(
      (c) => compareContenders(this.config.strategy, c, claim) > 0,
    )
    if (better) {
      const top = best(this.config.strategy, this.eligible(new Set([claimant.id])))!
      refuse(top.id, `${short(top.id)} outranks ${short(claimant.id)} (${this.config.strategy})`)
      return
    }
    if (this.role_ === 'restoring') this.abortRestore(`claim of ${short(claimant.id)} outranks mine`)
    this.follow(claimant.id)
  }

  private onRefuse(from: PeerInfo, msg: RefuseMessage): void {
    if (this.role_ !== 'restoring') return
    const better = msg.better === this.id ? undefined : this.peers_.get(msg.better)
    // A refusal naming a node this one cannot reach counts at formation (a node admitted late) or from
    // a majority of the reachable peers (they follow a server this node suspected falsely): the claim
    // is given up and this node waits for that node, bounded (claim-refusals.ts). Otherwise
    // reachability disagrees and this side keeps its server until a heal merges the two.
    if (!better?.reachable) {
      if (msg.better === this.id || this.claimed_handover_from !== null) return
      if (!this.refusals.givesUp(from, msg.better)) return
      this.timeline('claim_refused', { by: from.id, better: msg.better, reason: msg.reason, waits: true })
      this.abortRestore(`refused for ${short(msg.better)}, not reached yet: ${msg.reason}`)
      return
    }
    // The refuser may know less than this node (a resign it has not heard yet): check the claim again.
    const outranks = this.eligible(new Set())
      .filter((c) => c.id === better.id)
      .some((c) => compareContenders(this.config.strategy, c, this.self()) > 0)
    if (better.role !== 'server' && !outranks) return
    // A named hand-over successor claims by the leaving server's choice, not by rank: only a live server
    // stops it (a node that outranks it may not know of the hand-over yet).
    if (this.claimed_handover_from !== null && better.role !== 'server') return
    this.timeline('claim_refused', { by: from.id, better: better.id, reason: msg.reason })
    this.abortRestore(msg.reason)
    if (better.role === 'server') this.follow(better.id)
    else this.startElection(new Set(), better.id)
  }

  private onHandover(from: PeerInfo, msg: HandoverMessage): void {
    if (this.role_ === 'restoring' && this.claimed_handover_from === from.id && msg.to !== this.id) {
      // The leaving server gave up on this node (its restore stopped progressing): one successor at a time.
      this.abortRestore(`hand-over moved to ${short(msg.to)}`)
    }
    from.role = 'leaving'
    this.handover_to = msg.to
    this.split.handoverSeen(from.id, msg.to)
    const current = this.liveServer()
    if (current && current.id !== from.id) {
      // This node follows another live server: the leaving one will find it and merge into it.
      this.handover_to = null
      return
    }
    if (msg.to !== this.id) {
      // An electing node stops electing: the leaving server chose, and a claim of its own would race
      // the successor (a second server in a planned hand-over).
      if (this.role_ === 'candidate' || this.role_ === 'electing') this.follow(from.id)
      return
    }
    if (this.role_ !== 'candidate' && this.role_ !== 'electing') return
    if (this.split.defersHandoverClaim(msg.snapshot, from.id)) return
    this.claim(msg.snapshot, [from.id])
    this.claimed_handover_from = from.id
  }

  // ---------------------------------------------------------------- election

  private self(need = this.capacityNeed()): Contender & { term: number } {
    return {
      id: this.id,
      priority: this.config.priority,
      load: this.load_,
      snapshot: this.held_,
      term: this.term_,
      ...capacityFlags(
        { id: this.id, room_bytes: this.room_bytes_, site: this.config.site ?? null, role: this.role_ },
        need,
      ),
    }
  }

  private contender(p: PeerInfo, need = this.capacityNeed()): Contender {
    return {
      id: p.id,
      priority: p.priority,
      load: p.load,
      snapshot: p.snapshot,
      ...capacityFlags(p, need),
    }
  }

  /** `capacity`: room and site are judged against the snapshot an election here would restore. */
  private capacityNeed(): CapacityNeed | null {
    if (this.config.strategy !== 'capacity') return null
    const [snapshot] = this.newestCollectable(new Set())
    return snapshot === null ? null : capacityNeed(snapshot, this.bugs.checksRoom)
  }

  /**
   * Nodes this one can reach that may be elected now (itself included), minus `excluded`. Under
   * `capacity` a node without room for the snapshot is not one of them: it neither claims nor wins.
   */
  private eligible(excluded: Set<NodeId>): Contender[] {
    const out: Contender[] = []
    const need = this.capacityNeed()
    const me_ok = this.selfEligible() && this.role_ !== 'leaving' && !excluded.has(this.id)
    if (me_ok) out.push(this.self(need))
    for (const p of this.peers_.values()) {
      if (!p.reachable || excluded.has(p.id) || this.now_ms < p.ineligible_until_ms) continue
      if (p.role === 'candidate' || p.role === 'electing' || p.role === 'restoring')
        out.push(this.contender(p, need))
    }
    return out.filter((c) => c.room !== false)
  }

  /** A reachable peer restoring whose restore moved within `handover_timeout_ms` (its states say so). */
  private progressing(id: NodeId): boolean {
    const p = this.peers_.get(id)
    if (!p?.reachable || p.role !== 'restoring') return false
    return this.now_ms - p.progress_ms < this.config.handover_timeout_ms
  }

  private selfEligible(): boolean {
    return this.config.can_serve !== false && this.now_ms >= this.ineligible_until_ms
  }

  private startElection(excluded: Set<NodeId>, wait_for: NodeId | null = null): void {
    this.first_election = false
    this.server_ = null
    this.handover_to = null
    this.split.electionStarted()
    this.election = {
      deadline_ms: this.now_ms + this.config.election_timeout_ms,
      excluded,
      wait_for,
      top: null,
    }
    this.setRole('electing')
    this.evaluateElection()
  }

  private evaluateElection(): void {
    if (this.role_ !== 'electing' || this.election === null) return
    // Another live server is reachable (this node followed one server of two, e.g. as a bridge between
    // partitions, and lost it): follow it rather than make a third; two meeting servers merge anyway.
    const live = this.peers().filter(
      (p) => p.reachable && p.role === 'server' && !this.election!.excluded.has(p.id),
    )
    if (live.length > 0) {
      const pick = live.reduce((a, b) => (this.mergeWinner(a, b) === a.id ? a : b))
      this.follow(pick.id)
      return
    }
    // refuse-to-split: votes must converge on one node, so every voter ranks the same set; a lost
    // server is unreachable (not eligible) anyway, a resigned one ineligible for its cooldown.
    const contenders = this.eligible(this.split.ranksAll ? new Set() : this.election.excluded)
    const top = this.bugs.pick(this.config.strategy, contenders)
    this.election.top = top?.id ?? null
    if (top?.id !== this.id) return
    // A node already restoring (a named successor, or the winner of this election) that is alive and
    // progressing is followed, not raced: a second claim would make a second server.
    const restoring = best(
      this.config.strategy,
      this.peers()
        .filter((p) => !this.election!.excluded.has(p.id) && this.progressing(p.id))
        .map((p) => this.contender(p)),
    )
    if (restoring !== null) {
      this.follow(restoring.id)
      return
    }
    const wait_for = this.election.wait_for !== null ? this.peers_.get(this.election.wait_for) : undefined
    if (wait_for?.reachable) return
    if (!this.split.mayClaim()) return
    const [snapshot, sources] = this.newestCollectable(new Set())
    this.claim(snapshot, sources)
  }

  private claim(snapshot: SnapshotRef | null, sources: NodeId[]): void {
    // A snapshot held or restored names a term too (one replicated from a server whose messages were
    // lost when it exited): the new lineage's term must exceed its parent's.
    this.max_term_ = Math.max(this.max_term_, snapshot?.term ?? 0, this.held_?.term ?? 0)
    const term = this.bugs.claimTerm(this.max_term_)
    this.term_ = term
    this.max_term_ = term
    this.effects.push({ type: 'persist', term })
    this.election = null
    this.server_ = this.id
    this.handover_to = null
    this.claimed_handover_from = null
    this.refusals.claimed()
    this.restore_progress_ = 0
    this.head_ = null
    this.merged_in_ = []
    this.snapshot_in_flight = null
    this.health_ = 'unknown'
    this.answering_reported = false
    this.setRole('restoring')
    const claim: ClaimMessage = {
      type: 'claim',
      term,
      priority: this.config.priority,
      load: this.load_,
      snapshot: this.held_,
      ...this.capacityFields(),
    }
    this.effects.push({ type: 'broadcast', msg: claim })
    this.timeline('elected', { strategy: this.config.strategy, snapshot: snapshot?.id ?? null })
    this.restore = { snapshot, failed: new Set() }
    this.effects.push({ type: 'restore', snapshot, sources })
    this.broadcastState()
  }

  /** Newest complete snapshot this node can collect: its own, or one a reachable peer holds. */
  private newestCollectable(failed: Set<string>): [SnapshotRef | null, NodeId[]] {
    const offers: Array<{ snapshot: SnapshotRef; holder: NodeId }> = []
    if (this.held_ && !failed.has(this.held_.id)) offers.push({ snapshot: this.held_, holder: this.id })
    for (const p of this.peers_.values()) {
      if (p.reachable && p.snapshot && !failed.has(p.snapshot.id))
        offers.push({ snapshot: p.snapshot, holder: p.id })
    }
    if (offers.length === 0) return [null, []]
    const sign = this.bugs.restoreOrder
    let pick = offers[0]!.snapshot
    for (const o of offers) if (sign * compareSnapshots(o.snapshot, pick) > 0) pick = o.snapshot
    const sources = offers
      .filter((o) => o.snapshot.id === pick.id && o.holder !== this.id)
      .map((o) => o.holder)
    return [pick, sources]
  }

  private onRestoreDone(ok: boolean, snapshot: SnapshotRef | null, reason?: string): void {
    if (this.role_ !== 'restoring' || this.restore === null) return
    if (snapshot?.id !== this.restore.snapshot?.id) return
    if (ok) {
      this.restore = null
      this.head_ = snapshot
      if (snapshot && compareSnapshots(snapshot, this.held_) > 0) this.held_ = snapshot
      // Healthy only once the service answers a probe (driver event `answering`).
      this.health_ = 'unknown'
      this.next_snapshot_ms = this.now_ms + this.config.snapshot_interval_ms
      this.restarts_ms = []
      this.refusals.settled()
      this.setRole('server')
      this.timeline('restored', {
        snapshot: snapshot?.id ?? null,
        snapshot_time_ms: snapshot?.time_ms ?? null,
      })
      this.broadcastState()
      return
    }
    if (snapshot === null) {
      this.restore = null
      this.resign(`the service did not start: ${reason ?? 'unknown'}`)
      return
    }
    this.restore.failed.add(snapshot.id)
    this.timeline('fault_seen', { stage: 'restore', snapshot: snapshot.id, reason: reason ?? 'unknown' })
    const [next, sources] = this.newestCollectable(this.restore.failed)
    if (next === null) {
      // Every known snapshot failed: serving empty would silently drop data, so resign instead.
      this.restore = null
      this.resign('no snapshot could be restored')
      return
    }
    this.restore.snapshot = next
    this.effects.push({ type: 'restore', snapshot: next, sources })
  }

  private abortRestore(reason: string): void {
    if (this.role_ !== 'restoring') return
    this.restore = null
    this.effects.push({ type: 'cancel-restore' })
    this.effects.push({ type: 'stop-service', reason })
    this.server_ = null
    this.health_ = 'unknown'
    this.setRole('candidate')
  }

  private follow(server: NodeId): void {
    if (this.role_ === 'electing') this.election = null
    if (this.role_ !== 'candidate' && this.role_ !== 'electing') return
    this.server_ = server
    this.setRole('candidate')
  }

  // ---------------------------------------------------------------- serving

  private onDriver(kind: 'answering' | 'exited' | 'probe-failed' | 'unusable'): void {
    const serving = this.role_ === 'server'
    if (kind === 'answering') {
      if (this.role_ !== 'server' && this.role_ !== 'restoring') return
      this.health_ = 'ok'
      if (!this.answering_reported) {
        this.answering_reported = true
        this.timeline('service_answering', {})
      }
      return
    }
    if (!serving || this.handover !== null) return
    this.health_ = 'down'
    this.timeline('fault_seen', { stage: 'service', kind })
    this.restarts_ms = this.restarts_ms.filter((t) => this.now_ms - t < this.config.restart_window_ms)
    if (kind === 'unusable' && this.head_ === null) {
      // Nothing to repair from in place (no snapshot yet): restarting would serve the broken state.
      this.resign('service state unusable and no snapshot to restart from')
      return
    }
    if (this.restarts_ms.length >= this.config.restart_budget) {
      this.resign(
        `service failed ${this.restarts_ms.length + 1} times in ${this.config.restart_window_ms} ms`,
      )
      return
    }
    this.restarts_ms.push(this.now_ms)
    // Current state first: it holds work acknowledged since the last snapshot.
    const from = kind === 'unusable' ? 'snapshot' : 'current'
    this.timeline('restart_in_place', { from, attempt: this.restarts_ms.length })
    this.effects.push({ type: 'start-service', from, snapshot: from === 'snapshot' ? this.head_ : null })
  }

  private resign(reason: string): void {
    this.timeline('resigned', { reason })
    this.effects.push({ type: 'stop-service', reason })
    this.effects.push({ type: 'broadcast', msg: { type: 'resign', term: this.term_ } })
    this.health_ = 'unknown'
    this.head_ = null
    this.ineligible_until_ms = this.now_ms + this.config.resign_cooldown_ms
    // Not excluded for the whole election: the cooldown ends, and an election that outlasts it (others
    // wait for this node, the best again) must be able to pick it.
    this.startElection(new Set())
  }

  /**
   * Last words of a process that exits: a `resign` (whatever the role: a server's makes its followers
   * elect at once, a candidate's takes it out of elections under way) and `exit`. The role is kept (a
   * `leaving` state would shrink the member count; the node comes back, e.g. restarted by systemd).
   */
  private onTerminate(reason: string): void {
    this.terminated = true
    this.timeline('terminating', { reason })
    if (this.role_ === 'restoring') this.effects.push({ type: 'cancel-restore' })
    if (this.serving()) this.effects.push({ type: 'stop-service', reason: `terminating: ${reason}` })
    this.effects.push({ type: 'broadcast', msg: { type: 'resign', term: this.term_ } })
    this.effects.push({ type: 'exit' })
  }

  /**
   * `for_output`: started for waiting output (not by the interval, a merge or `snapshot-now`): the runtime
   * may cover it by the head whatever the head's age (nothing changed: the head holds the output's cause).
   * Interval snapshots stay full, so an idle service's recovery point keeps moving.
   */
  private takeSnapshot(final: boolean, for_output = false): void {
    const ref = nextSnapshotRef(
      this.head_,
      this.id,
      this.term_,
      this.now_ms,
      this.config.lineage_segments,
      this.merged_in_,
    )
    this.snapshot_in_flight = ref.id
    this.next_snapshot_before_ms = this.next_snapshot_ms
    this.next_snapshot_ms = this.now_ms + this.config.snapshot_interval_ms
    this.effects.push({ type: 'take-snapshot', snapshot: ref, final, ...(for_output ? { for_output } : {}) })
  }

  private onSnapshotStored(snapshot: SnapshotRef): void {
    if (compareSnapshots(snapshot, this.held_) > 0) this.held_ = snapshot
    this.dead_forks.addFork(snapshot)
    if (snapshot.writer !== this.id) {
      // Its writer counts it toward output commit; the others learn what a failover could restore now.
      const msg: StoredMessage = { type: 'stored', term: this.term_, snapshot }
      this.effects.push({ type: 'broadcast', msg })
      return
    }
    if (this.snapshot_in_flight !== snapshot.id) return
    this.snapshot_in_flight = null
    assert(snapshot.writer === this.id, 'own snapshot written by another node')
    assert(snapshot.term <= this.term_, 'own snapshot from a later term')
    // Taken before this node stepped down (resigned mid-snapshot): kept as data, not as a lineage head.
    // A merging server may serve again (its merge abandoned): its next snapshot must not reuse this id.
    // A claim clears the snapshot in flight, so one taken in an older term of this same stint (a merge
    // landed meanwhile, `onMerged`) is still this lineage's head: the next snapshot descends from it.
    const own_lineage = this.role_ === 'server' || this.role_ === 'merging' || this.handover !== null
    if (!own_lineage) return
    this.head_ = snapshot
    if (this.config.output_commit != null && this.bugs.releasesOnOwnStore) this.releaseOutput(snapshot, [])
    const handover = this.handover
    if (this.role_ === 'server' && handover === null && this.output_waiting) {
      // Output came after this capture's freeze: the next capture covers it, at once.
      this.output_waiting = false
      if (this.health_ !== 'down') this.takeSnapshot(false, true)
    }
    if (handover && handover.final === null) {
      if (handover.final_id === snapshot.id) {
        handover.final = snapshot
        this.nameSuccessor()
      } else this.takeFinalSnapshot()
    }
  }

  // ---------------------------------------------------------------- output commit

  /** Output waits: capture now, or right after the capture in flight (one at a time, coalesced). */
  private onOutputWaiting(): void {
    if (this.config.output_commit == null || this.role_ !== 'server' || this.handover !== null) return
    if (this.snapshot_in_flight !== null) this.output_waiting = true
    else if (this.health_ !== 'down') this.takeSnapshot(false, true)
  }

  /** A capture the head already holds ended: the next one starts at once if output came after its freeze. */
  private onSnapshotCovered(id: string): void {
    if (this.snapshot_in_flight !== id) return
    this.snapshot_in_flight = null
    // It stored nothing: the interval's snapshot is due as if it had not run.
    this.next_snapshot_ms = Math.min(this.next_snapshot_ms, this.next_snapshot_before_ms)
    if (this.handover && this.handover.final === null) {
      this.takeFinalSnapshot()
      return
    }
    if (this.role_ === 'server' && this.handover === null && this.output_waiting) {
      this.output_waiting = false
      if (this.health_ !== 'down') this.takeSnapshot(false, true)
    }
  }

  /** A peer stored a snapshot: what it could restore from; for this server's own, a confirmation. */
  private onStored(from: PeerInfo, msg: StoredMessage): void {
    const snapshot = msg.snapshot
    if (compareSnapshots(snapshot, from.snapshot) > 0) from.snapshot = snapshot
    const k = this.config.output_commit
    if (k == null || snapshot.writer !== this.id || snapshot.term !== this.term_) return
    if (this.role_ !== 'server' || snapshot.seq <= this.released_seq) return
    let entry = this.confirmations.get(snapshot.id)
    if (!entry) {
      entry = { snapshot, holders: new Set() }
      this.confirmations.set(snapshot.id, entry)
    }
    entry.holders.add(from.id)
    if (entry.holders.size >= k) this.releaseOutput(snapshot, [...entry.holders])
  }

  /** Every byte sent before `snapshot` froze the service may go; earlier snapshots need no more waiting. */
  private releaseOutput(snapshot: SnapshotRef, holders: NodeId[]): void {
    if (snapshot.seq <= this.released_seq) return
    this.released_seq = snapshot.seq
    for (const [id, entry] of this.confirmations)
      if (entry.snapshot.seq <= snapshot.seq) this.confirmations.delete(id)
    this.effects.push({ type: 'release-output', snapshot, holders })
  }

  /**
   * Winner side of a heal: the loser's changes are in this service now. Snapshots rank by term first, so
   * the loser's newest snapshot (often a higher term) would outrank every later snapshot of this server,
   * and a failover would restore it and lose what this server accepted. A new term above every term known
   * makes the next snapshot (taken at once, or right after the one in flight) the newest everywhere.
   */
  private onMerged(from: NodeId, head: SnapshotRef | null): void {
    if (this.role_ !== 'server' || this.handover !== null) return
    if (!this.bugs.handlesMerged) return
    // The merged changes reach `head`: later snapshots say so (merged segments), so the fork is known held.
    if (head !== null) {
      const segments = [...this.merged_in_, ...closure(head)]
      this.merged_in_ = mergedSegments(this.head_?.lineage ?? [], segments, this.config.lineage_segments)
    }
    let top = Math.max(this.max_term_, this.held_?.term ?? 0, this.head_?.term ?? 0)
    for (const p of this.peers_.values())
      top = Math.max(top, p.term, p.snapshot?.term ?? 0, p.head?.term ?? 0)
    const term = top + 1
    this.term_ = term
    this.max_term_ = term
    this.effects.push({ type: 'persist', term })
    // Confirmations count snapshots of one term; a later one releases everything before its freeze.
    this.confirmations.clear()
    this.released_seq = 0
    this.timeline('merge_landed', { from, term })
    if (this.snapshot_in_flight !== null) this.output_waiting = true
    else if (this.health_ !== 'down') this.takeSnapshot(false)
    this.broadcastState()
  }

  // ---------------------------------------------------------------- leave, hand-over, preempt

  private onLeave(): void {
    if (this.role_ === 'leaving') return
    if (this.role_ === 'server' && this.handover === null) {
      this.startHandover('exit')
      return
    }
    if (this.role_ === 'restoring') this.abortRestore('leaving')
    this.effects.push({ type: 'broadcast', msg: { type: 'leaving', term: this.term_ } })
    this.setRole('leaving')
    this.effects.push({ type: 'exit' })
  }

  private considerPreempt(): void {
    if (this.health_ !== 'ok') return
    const me = this.self()
    const higher = this.eligible(new Set([this.id])).some(
      (c) => compareContenders(this.config.strategy, c, me) > 0,
    )
    if (higher) this.startHandover('candidate')
  }

  /** The hand-over under way (handover.ts holds it). */
  private get handover(): Handover | null {
    return this.hand.state
  }
  private set handover(state: Handover | null) {
    this.hand.state = state
  }

  /** Stop the service (so nothing acknowledged is lost), take a final snapshot, then name a successor. */
  private startHandover(after: 'exit' | 'candidate'): void {
    this.hand.startHandover(after)
  }

  /** Also the retry when a final snapshot failed; the service stays stopped so nothing new is acknowledged. */
  private takeFinalSnapshot(): void {
    this.hand.takeFinalSnapshot()
  }

  private nameSuccessor(): void {
    this.hand.nameSuccessor()
  }

  private finishHandover(): void {
    this.hand.finishHandover()
  }

  /** What the serving side's hand-over (handover.ts) reads of this node and may make it do. */
  private handoverHost(): HandoverHost {
    return {
      ...this.roleHost(),
      term: () => this.term_,
      peers: () => this.peers(),
      progressing: (id) => this.progressing(id),
      eligible: (excluded) => this.eligible(excluded),
      snapshotInFlight: () => this.snapshot_in_flight,
      takeSnapshot: (final) => this.takeSnapshot(final),
    }
  }

  /** What every part of this core in a file of its own reads and adds (host.ts). */
  private coreHost(): CoreHost {
    return {
      id: this.id,
      config: this.config,
      now_ms: () => this.now_ms,
      timeline: (name, fields) => this.timeline(name, fields),
      push: (effect) => this.effects.push(effect),
    }
  }

  /** ... and moves this node between roles. */
  private roleHost(): RoleHost {
    return {
      ...this.coreHost(),
      setServer: (server) => {
        this.server_ = server
      },
      setRole: (role) => this.setRole(role),
      dropHead: () => {
        this.head_ = null
        this.health_ = 'unknown'
      },
    }
  }

  // ---------------------------------------------------------------- partition heal

  private onMergeDone(ok: boolean, winner: NodeId, reason?: string): void {
    if (this.dead_forks.onMergeDone(ok, winner, reason)) return
    this.heal.onMergeDone(ok, winner, reason)
  }

  /** What the heal's loser side (merge.ts) reads of this node and may make it do. */
  private healMergeHost(): HealMergeHost {
    return {
      ...this.roleHost(),
      role: () => this.role_,
      peer: (id) => this.peers_.get(id),
      head: () => this.head_,
      snapshotInFlight: () => this.snapshot_in_flight !== null,
      forkPoint: (fork, head) => this.bugs.forkPoint(fork, head),
      startHandover: (after) => this.startHandover(after),
    }
  }

  // ---------------------------------------------------------------- dead forks

  /** What the dead-fork logic (dead-fork.ts) reads of this node and the effects it may add. */
  private deadForkHost(): DeadForkHost {
    return {
      ...this.coreHost(),
      peers: () => this.peers(),
      peer: (id) => this.peers_.get(id),
      liveServer: () => this.liveServer(),
      handoverTo: () => this.handover_to,
      held: () => this.held_,
      mergesDeadForks: this.bugs.mergesDeadForks,
    }
  }

  // ---------------------------------------------------------------- the split policy's view

  /** What the split policy (policy/split.ts) reads of this node and may make it do. */
  private splitHost(): SplitHost {
    return {
      id: this.id,
      now_ms: () => this.now_ms,
      peers: () => this.peers_.values(),
      peer: (id) => this.peers_.get(id),
      wouldSupport: () => this.desiredSupport(),
      handoverTo: () => this.handover_to,
      mustHoldMajority: () =>
        (this.role_ === 'server' || this.role_ === 'restoring') && this.handover === null,
      broadcastState: () => this.broadcastState(),
      timeline: (name, fields) => this.timeline(name, fields),
      claimHandover: (snapshot, source) => {
        if (this.role_ !== 'candidate' && this.role_ !== 'electing') return
        this.claim(snapshot, [source])
        this.claimed_handover_from = source
      },
      stepDown: () => {
        if (this.role_ === 'restoring') {
          this.restore = null
          this.effects.push({ type: 'cancel-restore' })
        }
        this.effects.push({ type: 'stop-service', reason: 'lost quorum', keep_aside: true })
        this.health_ = 'unknown'
        this.head_ = null
        this.startElection(new Set())
      },
    }
  }

  /** Whom this node would support now: itself while serving, its server, or its election's best. */
  private desiredSupport(): NodeId | null {
    if (this.serving()) return this.id
    // A leaving server named its successor: support it at once, so it has its majority when it claims.
    if (this.role_ === 'candidate') return this.handover_to ?? this.server_
    if (this.role_ === 'electing') return this.election?.top ?? null
    return null
  }

  // ---------------------------------------------------------------- plumbing

  private setRole(role: Role): void {
    if (role === this.role_) return
    const from = this.role_
    this.role_ = role
    if (!this.serving()) this.term_ = this.max_term_
    if (role !== 'server') {
      // Held output belongs to the service that ran: a new term releases only what its own snapshots cover.
      this.output_waiting = false
      this.confirmations.clear()
      this.released_seq = 0
    }
    if (role !== 'electing') this.election = null
    if (role !== 'candidate') this.dead_forks.notCandidate()
    this.timeline('role_changed', { from, to: role })
    this.broadcastState()
  }

  /** What states and claims say of this node's room and site (only what is known). */
  private capacityFields(): { room_bytes?: number; site?: string } {
    return {
      ...(this.room_bytes_ !== null ? { room_bytes: this.room_bytes_ } : {}),
      ...(this.config.site !== undefined ? { site: this.config.site } : {}),
    }
  }

  private broadcastState(): void {
    const msg: StateMessage = {
      type: 'state',
      term: this.term_,
      role: this.role_,
      priority: this.config.priority,
      load: this.load_,
      ...this.capacityFields(),
      server: this.server_,
      snapshot: this.held_,
      head: this.role_ === 'server' || this.role_ === 'merging' ? this.head_ : null,
      health: this.health_,
      eligible: this.selfEligible(),
    }
    this.split.stateFields(msg)
    if (this.role_ === 'restoring') msg.progress = this.restore_progress_
    if (this.role_ === 'server' && this.merged_in_.length > 0) msg.merged = this.merged_in_
    // Only the newest state matters: replace a state broadcast queued earlier in this step.
    this.effects = this.effects.filter((e) => !(e.type === 'broadcast' && e.msg.type === 'state'))
    this.effects.push({ type: 'broadcast', msg })
    this.next_heartbeat_ms = this.now_ms + this.config.heartbeat_interval_ms
  }

  private timeline(name: TimelineName, fields: Record<string, unknown>): void {
    this.effects.push({ type: 'timeline', name, role: this.role_, term: this.term_, fields })
  }

  private checkInvariants(): void {
    assert(this.term_ >= 0 && this.term_ <= this.max_term_, 'term out of range')
    const serving = this.role_ === 'server' || this.role_ === 'restoring'
    assert(!serving || this.server_ === this.id, `${this.role_} must follow itself`)
    assert(this.role_ !== 'electing' || this.election !== null, 'electing without an election')
    assert(this.role_ !== 'restoring' || this.restore !== null, 'restoring without a restore')
    assert(this.role_ !== 'merging' || this.heal.active, 'merging without a merge')
    assert(
      this.role_ === 'server' || this.role_ === 'leaving' || this.handover === null,
      'hand-over off server',
    )
  }
}

function short(id: NodeId): string {
  return id.slice(0, 8)
}
