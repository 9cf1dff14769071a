import type { TimelineName } from '../io.ts'
import type { StateMessage } from '../messages.ts'
import type { NodeId, PeerInfo, SnapshotRef } from '../types.ts'

/**
 * What the core's split policy may read of its node and make it do. NodeCore implements it; the policy
 * keeps its own state (whom the node supports, the members it counts) and decides nothing else.
 */
export interface SplitHost {
  readonly id: NodeId
  now_ms(): number
  peers(): Iterable<PeerInfo>
  peer(id: NodeId): PeerInfo | undefined
  /** Whom this node would support now: itself while serving, its server (or named successor), its election's best. */
  wouldSupport(): NodeId | null
  /** The successor a leaving server named (this node included), if any. */
  handoverTo(): NodeId | null
  /** Serving (`server`/`restoring`) and not handing over: a node that must keep a majority. */
  mustHoldMajority(): boolean
  broadcastState(): void
  timeline(name: TimelineName, fields: Record<string, unknown>): void
  /** This node, named successor, claims now with the leaving server's final snapshot (if it still may). */
  claimHandover(snapshot: SnapshotRef, source: NodeId): void
  /** This serving node lost its majority: stop at once (state copied aside) and elect. */
  stepDown(): void
}

/**
 * What a merge policy changes in the core's election and serving: `helper` and `keep-higher` let two
 * sides of a partition serve and merge after the heal (`AllowSplit`); `refuse-to-split` serves only
 * with a majority's support (refuse-to-split.ts). The core calls these at the points named.
 */
export interface SplitPolicy {
  /** Electing nodes rank every reachable eligible node, excluding none (votes must converge). */
  readonly ranksAll: boolean
  /** An electing node looks at its election again every tick (supports age with time alone). */
  readonly reviewsEachTick: boolean
  /** A leaving server repeats its hand-over every heartbeat (its successor waits for support). */
  readonly repeatsHandover: boolean
  /** A node heard of for the first time: true when the members must be persisted (`members()`). */
  memberHeard(id: NodeId): boolean
  members(): NodeId[]
  /** An election starts: a hand-over in progress is forgotten. */
  electionStarted(): void
  /** This node would claim: may it now? (false: it waits, and says so once per election) */
  mayClaim(): boolean
  /** A leaving server `from` named `to` its successor. */
  handoverSeen(from: NodeId, to: NodeId): void
  /** This node was named successor: true when its claim waits for support (`afterEvent` makes it). */
  defersHandoverClaim(snapshot: SnapshotRef, source: NodeId): boolean
  /** After every event: move support, claim a pending hand-over, step down without a majority. */
  afterEvent(): void
  /** Fields this policy adds to the node's state messages. */
  stateFields(msg: StateMessage): void
  /**
   * This node reaches no strict majority of the members (itself and the reachable ones that have not
   * left): its side of a split cannot have a server, so its front door may refuse clients instead of
   * holding them (`front_door.minority`). Always false where both sides may serve.
   */
  lacksMajority(): boolean
}

/** `helper` and `keep-higher`: every side of a partition elects its own server; a heal merges them. */
export class AllowSplit implements SplitPolicy {
  readonly ranksAll = false
  readonly reviewsEachTick = false
  readonly repeatsHandover = false
  memberHeard(): boolean {
    return false
  }
  members(): NodeId[] {
    return []
  }
  electionStarted(): void {}
  mayClaim(): boolean {
    return true
  }
  handoverSeen(): void {}
  defersHandoverClaim(): boolean {
    return false
  }
  afterEvent(): void {}
  stateFields(): void {}
  lacksMajority(): boolean {
    return false
  }
}
