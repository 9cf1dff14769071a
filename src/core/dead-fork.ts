import type { CoreHost } from './host.ts'
import { closure, covers, forkPoint } from './lineage.ts'
import { compareSnapshots } from './ranking.ts'
import type { NodeId, PeerInfo, SnapshotRef } from './types.ts'

/** Dead fork: a snapshot this candidate holds whose changes no live server has; it merges them into its server. */
interface ForkMerge {
  head: SnapshotRef
  winner: NodeId
  attempt: number
  running: boolean
  retry_at_ms: number
}

/** Lineage heads a node remembers from its store (each not in another's closure), newest kept. */
const MAX_FORKS = 16

/** What the dead-fork logic reads of its node (NodeCore) and the effects it may add. */
export interface DeadForkHost extends CoreHost {
  peers(): PeerInfo[]
  peer(id: NodeId): PeerInfo | undefined
  /** The peer this node follows, if it is reachable and says it serves. */
  liveServer(): PeerInfo | undefined
  /** The successor a leaving server named (this node included), if any. */
  handoverTo(): NodeId | null
  /** Newest complete snapshot in the local store. */
  held(): SnapshotRef | null
  /** false only with the planted bug `dead-fork-ignored`. */
  readonly mergesDeadForks: boolean
}

/**
 * A node's lineage heads and the dead-fork merge a candidate runs for its server. State of its own
 * (the heads, the merge in flight, the forks handed over); NodeCore calls it at the points named.
 */
export class DeadForks {
  /** Heads of the lineages in the local store: candidates for a dead-fork merge. */
  private forks_: SnapshotRef[] = []
  private fork_merge: ForkMerge | null = null
  /**
   * Dead forks handed to a server, by id: not offered again to that server in that term for
   * `merge_retry_ms` (its next head says it holds them), or ever under a policy without merges (the
   * runtime keeps the fork's state aside instead, once).
   */
  private readonly fork_merged = new Map<string, { server: NodeId; term: number; until_ms: number }>()

  constructor(private readonly host: DeadForkHost) {}

  /** Lineage heads held locally that no other held snapshot's closure covers. */
  get forks(): readonly SnapshotRef[] {
    return this.forks_
  }

  /** The node is no longer a candidate: a dead-fork merge is a candidate's errand; the fork stays remembered. */
  notCandidate(): void {
    this.fork_merge = null
  }

  /** Remembers `ref` as a lineage head unless a held head's closure covers it; drops heads it covers. */
  addFork(ref: SnapshotRef): void {
    if (this.forks_.some((f) => f.id === ref.id || covers(closure(f), ref))) return
    const mine = closure(ref)
    this.forks_ = this.forks_.filter((f) => !covers(mine, f))
    this.forks_.push(ref)
    if (this.forks_.length > MAX_FORKS) {
      // The oldest goes (lowest rank): a fork is kept for as long as 16 newer lineage heads allow.
      this.forks_.sort(compareSnapshots)
      this.forks_.shift()
    }
  }

  /** `merge-done` for the dead-fork merge in flight with `winner`: true when it was that one's. */
  onMergeDone(ok: boolean, winner: NodeId, reason?: string): boolean {
    const fork = this.fork_merge
    if (!(fork?.running && fork.winner === winner)) return false
    fork.running = false
    if (ok) {
      this.fork_merge = null
      // Still remembered: should the server die before a snapshot of the merge reaches a candidate,
      // this copy is the fork's again, to merge into the next server.
      const term = this.host.peer(winner)?.term ?? 0
      const until_ms = this.host.now_ms() + this.host.config.merge_retry_ms
      this.fork_merged.set(fork.head.id, { server: winner, term, until_ms })
      this.host.timeline('dead_fork_merged', { winner, dead_fork: fork.head.id, attempts: fork.attempt })
    } else {
      this.host.timeline('dead_fork_merge_failed', {
        winner,
        dead_fork: fork.head.id,
        reason: reason ?? 'unknown',
      })
      fork.retry_at_ms = this.host.now_ms() + this.host.config.merge_retry_ms
    }
    return true
  }

  /**
   * Dead fork: a snapshot this candidate holds that its live server's closure does not cover, whose
   * lineage no reachable server or merging node continues (its server died or stepped down before a
   * heal merged it), holds changes nobody else will merge, released output among them. The candidate
   * materialises it and merges it into its server like a heal's loser, and stays a candidate. One
   * holder does it: the smallest id among reachable candidates whose newest snapshot covers it; the
   * winner applies a fork it already holds only once (`holdsFork`).
   */
  considerDeadFork(): void {
    const fork = this.fork_merge
    const server = this.host.liveServer()
    if (fork !== null) {
      if (fork.running || this.host.now_ms() < fork.retry_at_ms) return
      if (server?.id === fork.winner) this.runForkMerge(fork)
      else this.fork_merge = null
      return
    }
    if (server?.head == null || this.host.handoverTo() !== null) return
    if (!this.host.mergesDeadForks) return
    // The server's head as last announced is behind a snapshot of it stored here: its state (and with it
    // what it holds, so the fork point) is on its way. Merging now would archive more than needed.
    const held = this.host.held()
    if (held?.writer === server.id && compareSnapshots(held, server.head) > 0) return
    // What it merged since its last snapshot counts: a heal's loser that is a candidate now would
    // otherwise take its own last snapshot for a dead fork until the winner's next snapshot arrives.
    const holds = [...closure(server.head), ...(server.merged_in ?? [])]
    for (const id of this.fork_merged.keys())
      if (!this.forks_.some((f) => f.id === id)) this.fork_merged.delete(id)
    const merges = this.host.config.merge_policy === 'helper'
    const handed = (f: SnapshotRef) => {
      const done = this.fork_merged.get(f.id)
      if (done === undefined || done.server !== server.id || done.term !== server.term) return false
      return !merges || this.host.now_ms() < done.until_ms
    }
    for (const f of this.forks_) {
      // Covered forks stay remembered: the server that holds them may die before its snapshots spread.
      if (covers(holds, f) || handed(f) || this.lineageLive(f)) continue
      const other = this.host
        .peers()
        .some(
          (p) =>
            p.reachable &&
            p.id < this.host.id &&
            p.role === 'candidate' &&
            p.server === server.id &&
            p.snapshot !== null &&
            covers(closure(p.snapshot), f),
        )
      if (other) continue
      const next: ForkMerge = { head: f, winner: server.id, attempt: 0, running: false, retry_at_ms: 0 }
      this.fork_merge = next
      this.runForkMerge(next)
      return
    }
  }

  /**
   * `ref` belongs to a live lineage: a reachable server or merging node continues its segment (the heal
   * between servers merges it), or wrote it in its current stint (a snapshot of a term its states have
   * not announced as head yet). An older term of a node that serves again is a fork like any other.
   */
  private lineageLive(ref: SnapshotRef): boolean {
    return this.host.peers().some((p) => {
      if (!p.reachable || (p.role !== 'server' && p.role !== 'merging')) return false
      if (p.head?.writer === ref.writer && p.head.term === ref.term) return true
      return p.id === ref.writer && ref.term >= Math.max(p.term, p.head?.term ?? 0)
    })
  }

  private runForkMerge(fork: ForkMerge): void {
    const winner = this.host.peer(fork.winner)
    const fork_point = forkPoint(fork.head.lineage, closure(winner?.head ?? null))
    fork.attempt += 1
    fork.running = true
    this.host.timeline('dead_fork_merge_started', {
      winner: fork.winner,
      dead_fork: fork.head.id,
      fork: fork_point?.id ?? null,
      attempt: fork.attempt,
    })
    this.host.push({
      type: 'run-merge',
      winner: fork.winner,
      fork: fork_point,
      attempt: fork.attempt,
      head: fork.head,
      dead_fork: true,
    })
  }
}
