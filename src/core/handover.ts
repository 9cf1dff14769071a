import { assert } from './assert.ts'
import type { RoleHost } from './host.ts'
import type { HandoverMessage } from './messages.ts'
import { best, type Contender } from './ranking.ts'
import type { NodeId, PeerInfo, SnapshotRef } from './types.ts'

export interface Handover {
  after: 'exit' | 'candidate'
  /** Id of the final snapshot, taken after the service stopped; null while an earlier one is in flight. */
  final_id: string | null
  final: SnapshotRef | null
  successor: NodeId | null
  deadline_ms: number
  tried: Set<NodeId>
}

/** What a serving node's hand-over reads of its node (NodeCore) and may make it do. */
export interface HandoverHost extends RoleHost {
  term(): number
  peers(): PeerInfo[]
  /** A reachable peer restoring whose restore moved within `handover_timeout_ms`. */
  progressing(id: NodeId): boolean
  /** Nodes this one can reach that may be elected now (itself included), minus `excluded`. */
  eligible(excluded: Set<NodeId>): Contender[]
  /** The id of the snapshot in flight, if any. */
  snapshotInFlight(): string | null
  takeSnapshot(final: boolean): void
}

/**
 * Leave and preempt on the serving side: stop the service (so nothing acknowledged is lost), take a final
 * snapshot, name the best successor, and step down (or exit) once it serves. The hand-over under way is
 * `state` (NodeCore reads it at the points a hand-over changes).
 */
export class HandOver {
  state: Handover | null = null

  constructor(private readonly host: HandoverHost) {}

  /** Stop the service (so nothing acknowledged is lost), take a final snapshot, then name a successor. */
  startHandover(after: 'exit' | 'candidate'): void {
    this.state = { after, final_id: null, final: null, successor: null, deadline_ms: 0, tried: new Set() }
    if (after === 'exit') this.host.setRole('leaving')
    this.host.timeline('handover_started', { after })
    this.host.push({ type: 'stop-service', reason: after === 'exit' ? 'leave' : 'preempt' })
    // A snapshot already in flight was taken while the service ran: the final one waits for it.
    if (this.host.snapshotInFlight() === null) this.takeFinalSnapshot()
  }

  /** Also the retry when a final snapshot failed; the service stays stopped so nothing new is acknowledged. */
  takeFinalSnapshot(): void {
    assert(this.state !== null, 'final snapshot outside a hand-over')
    this.host.takeSnapshot(true)
    this.state.final_id = this.host.snapshotInFlight()
  }

  /** Each tick: a successor that claimed is waited for as long as its restore progresses. */
  onTick(now: number): void {
    // A successor that claimed is waited for as long as its restore progresses (a big image takes time).
    const handing = this.state
    if (handing?.successor && now >= handing.deadline_ms && !this.host.progressing(handing.successor)) {
      handing.tried.add(handing.successor)
      handing.successor = null
      this.nameSuccessor()
    } else if (handing?.final && handing.successor === null && now >= handing.deadline_ms) {
      this.nameSuccessor() // it waited for another node's restore (see nameSuccessor)
    }
  }

  nameSuccessor(): void {
    const handover = this.state
    if (handover === null || handover.final === null) return
    const excluded = new Set([this.host.id, ...handover.tried])
    // Another node restores (an election while this one handed over) and progresses: naming a successor
    // now would race it (a second server). Wait; once it serves, this node merges into it (onServerSeen).
    // (Also one passed over earlier: it restores by its own claim now.)
    if (this.host.peers().some((p) => this.host.progressing(p.id))) {
      handover.successor = null
      handover.deadline_ms = this.host.now_ms() + this.host.config.handover_timeout_ms
      return
    }
    const next = best(this.host.config.strategy, this.host.eligible(excluded))
    if (next === null) {
      // Nobody to hand over to: keep or give up the service as asked, the final snapshot stays local.
      if (handover.after === 'exit') this.finishHandover()
      else {
        this.state = null
        this.host.push({ type: 'start-service', from: 'current', snapshot: null })
      }
      return
    }
    handover.successor = next.id
    handover.deadline_ms = this.host.now_ms() + this.host.config.handover_timeout_ms
    const msg: HandoverMessage = {
      type: 'handover',
      term: this.host.term(),
      to: next.id,
      snapshot: handover.final,
    }
    this.host.push({ type: 'broadcast', msg })
  }

  finishHandover(): void {
    const handover = this.state
    assert(handover !== null, 'finishing a hand-over that did not start')
    this.state = null
    this.host.timeline('handover_finished', { successor: handover.successor })
    this.host.dropHead()
    if (handover.after === 'exit') {
      this.host.setRole('leaving')
      this.host.push({ type: 'exit' })
    } else {
      this.host.setServer(handover.successor)
      this.host.setRole('candidate')
    }
  }
}
