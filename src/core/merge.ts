import { assert } from './assert.ts'
import type { CoreConfig } from './config.ts'
import type { RoleHost } from './host.ts'
import { closure, forkPoint } from './lineage.ts'
import type { BugSeam } from './planted-bugs.ts'
import { compareStatic } from './ranking.ts'
import type { NodeId, PeerInfo, Role, SnapshotRef } from './types.ts'

interface Merge {
  /** What the loser becomes once the winner confirms: a candidate, or gone (it was leaving). */
  after: 'candidate' | 'exit'
  winner: NodeId
  attempt: number
  running: boolean
  retry_at_ms: number
}

/** Who keeps the service when two servers meet: by priority, or by newest term then priority. */
export function mergeWinner(
  direction: CoreConfig['merge_direction'],
  a: { id: NodeId; priority: number; term: number },
  b: PeerInfo,
): NodeId {
  const ca = { id: a.id, priority: a.priority, load: 0, snapshot: null }
  const cb = { id: b.id, priority: b.priority, load: 0, snapshot: null }
  if (direction === 'newest-term' && a.term !== b.term) return a.term > b.term ? a.id : b.id
  return compareStatic(ca, cb) > 0 ? a.id : b.id
}

/** What the loser's side of a partition heal reads of its node (NodeCore) and may make it do. */
export interface HealMergeHost extends RoleHost {
  role(): Role
  peer(id: NodeId): PeerInfo | undefined
  /** Lineage head while serving. */
  head(): SnapshotRef | null
  /** A snapshot is in flight (the merge waits for it: stored, it is the head the offer names). */
  snapshotInFlight(): boolean
  readonly forkPoint: BugSeam['forkPoint']
  startHandover(after: 'exit' | 'candidate'): void
}

/**
 * The loser's side of a partition heal: it stops serving (`merging`), offers its changes since the fork
 * to the winner (`run-merge`), and becomes a candidate (or leaves) once the winner confirms; a winner
 * that goes away mid-merge makes it serve again. State of its own (the merge in flight).
 */
export class HealMerge {
  private merge: Merge | null = null

  constructor(private readonly host: HealMergeHost) {}

  /** A merge is under way (the role `merging` has one). */
  get active(): boolean {
    return this.merge !== null
  }

  /** The server this node merges into, if it merges. */
  get winner(): NodeId | null {
    return this.merge?.winner ?? null
  }

  startMerge(winner: PeerInfo, after: 'candidate' | 'exit'): void {
    this.merge = {
      after,
      winner: winner.id,
      attempt: 0,
      running: false,
      retry_at_ms: this.host.now_ms(),
    }
    this.host.setServer(winner.id)
    this.host.setRole('merging')
    // A snapshot in flight is waited for (the runtime always ends it: stored, covered or failed), as a
    // hand-over waits for its final one: stored, it is the head the offer names and the winner records as
    // merged. Named older, the newer one would be left on candidates as a fork nobody covers, and merged
    // a second time as dead. (A bound of `merge_retry_ms` was too short: a capture under load takes longer.)
    if (!this.host.snapshotInFlight()) this.runMerge()
  }

  /** Each tick while merging: retry a failed offer, or serve again if the winner no longer serves. */
  onTick(now: number): void {
    const merge_waits = this.host.snapshotInFlight()
    if (
      this.host.role() === 'merging' &&
      this.merge &&
      !this.merge.running &&
      now >= this.merge.retry_at_ms &&
      !merge_waits
    ) {
      const winner = this.host.peer(this.merge.winner)
      // The winner stopped serving meanwhile (it merged into a third server, or restarted): serve again
      // and let the heal rule pick the merge anew, so chains of merging nodes cannot wait on each other.
      if (winner?.reachable && winner.role === 'server') this.runMerge()
      else this.abandonMerge(`winner ${this.merge.winner.slice(0, 8)} no longer serves`)
    }
  }

  runMerge(): void {
    const merge = this.merge
    assert(merge !== null, 'no merge to run')
    const winner = this.host.peer(merge.winner)
    // Forks merged into the winner count as common: what it already holds is not archived again. Those
    // merged since its last snapshot (announced beside its head) too, as a dead fork's merge counts them.
    const theirs = [...closure(winner?.head ?? null), ...(winner?.merged_in ?? [])]
    const head = this.host.head()
    const mine = head?.lineage ?? []
    const fork = this.host.forkPoint(forkPoint(mine, theirs), head)
    merge.attempt += 1
    merge.running = true
    this.host.timeline('merge_started', {
      winner: merge.winner,
      fork: fork?.id ?? null,
      attempt: merge.attempt,
    })
    this.host.push({
      type: 'run-merge',
      winner: merge.winner,
      fork,
      attempt: merge.attempt,
      head,
    })
  }

  onMergeDone(ok: boolean, winner: NodeId, reason?: string): void {
    const merge = this.merge
    if (this.host.role() !== 'merging' || merge === null || merge.winner !== winner) return
    merge.running = false
    if (ok) {
      this.merge = null
      this.host.dropHead()
      this.host.timeline('merge_finished', { winner, attempts: merge.attempt })
      this.host.setServer(winner)
      if (merge.after === 'exit') {
        this.host.setRole('leaving')
        this.host.push({ type: 'exit' })
      } else this.host.setRole('candidate')
      return
    }
    this.host.timeline('merge_failed', { winner, attempt: merge.attempt, reason: reason ?? 'unknown' })
    merge.retry_at_ms = this.host.now_ms() + this.host.config.merge_retry_ms
  }

  /** The winner went away mid-merge: this node still holds its state, so it serves again. */
  abandonMerge(reason: string): void {
    if (this.host.role() !== 'merging' || this.merge === null) return
    const after = this.merge.after
    this.merge = null
    this.host.timeline('merge_failed', { reason })
    this.host.setServer(this.host.id)
    this.host.setRole('server')
    this.host.push({ type: 'start-service', from: 'current', snapshot: null })
    // It was leaving when the heal interrupted: the leave still stands.
    if (after === 'exit') this.host.startHandover('exit')
  }
}
