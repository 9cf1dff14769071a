import type { ForkPoint } from './lineage.ts'
import type { ControlMessage } from './messages.ts'
import type { NodeId, Role, SnapshotRef } from './types.ts'

/** Inputs to the core. Every event carries the time it happened; the core reads no clock. */
export type CoreEvent =
  | { type: 'tick'; now_ms: number }
  | { type: 'peer-up'; peer: NodeId; now_ms: number }
  /**
   * `closed`: its control connection ended (a goodbye at the protocol level); `suspected`: silence
   * (phi-accrual); `gone`: evidence that its process is gone (a data lane ended and the immediate redial
   * was refused: nothing listens at its address any more), acted on without waiting for silence.
   */
  | { type: 'peer-down'; peer: NodeId; reason: PeerDownCause; now_ms: number }
  | { type: 'message'; from: NodeId; msg: ControlMessage; now_ms: number }
  | { type: 'driver'; kind: DriverEventKind; now_ms: number }
  | { type: 'snapshot-stored'; snapshot: SnapshotRef; now_ms: number }
  | { type: 'snapshot-failed'; id: string; reason: string; now_ms: number }
  /**
   * Output commit: capture `id` found the state of the lineage head unchanged, so nothing new was stored
   * (the runtime releases what it covers when the head is stored on k); the capture slot is free.
   */
  | { type: 'snapshot-covered'; id: string; now_ms: number }
  /** Output commit: the service sent a client bytes that wait for a snapshot taken after them. */
  | { type: 'output-waiting'; now_ms: number }
  | { type: 'restore-done'; ok: boolean; snapshot: SnapshotRef | null; reason?: string; now_ms: number }
  /** The restore moved on (bytes collected, state materialised, service started): peers see it progress. */
  | { type: 'restore-progress'; now_ms: number }
  | { type: 'merge-done'; ok: boolean; winner: NodeId; reason?: string; now_ms: number }
  /**
   * Winner side of a heal: the loser's changes since the fork landed in this server's service. Its state
   * now descends from both lineages, so it must outrank the loser's newest snapshot: a new term.
   */
  | {
      type: 'merged'
      from: NodeId
      /** The snapshot the merged changes reach (merge-offer `head`): recorded in this lineage's merged segments. */
      head?: SnapshotRef | null
      now_ms: number
    }
  | { type: 'leave'; now_ms: number }
  /** An operator (or a helper) asks for a snapshot now; ignored unless this node serves. */
  | { type: 'snapshot-now'; now_ms: number }
  /** `room_bytes`: free disk for the state (absent: unchanged, or never measured). */
  | { type: 'load'; load: number; room_bytes?: number; now_ms: number }
  /**
   * The overlay is up: the join wait (hearing of a server before electing one) counts from here, not
   * from the core's construction (starting the overlay can take a second or more on a loaded machine).
   */
  | { type: 'joined'; now_ms: number }
  /**
   * This process is about to exit (SIGTERM/SIGINT/SIGHUP, or an uncaught error): its last words are a
   * `resign`, so peers elect at once instead of waiting for silence. Nothing is handled after it.
   */
  | { type: 'terminate'; reason: string; now_ms: number }

export type PeerDownCause = 'closed' | 'suspected' | 'gone'

/** `answering`: the service passed its first probe. `unusable`: its current state cannot be used. */
export type DriverEventKind = 'answering' | 'exited' | 'probe-failed' | 'unusable'

/** Timeline stages: one log record each, with the monotonic time, so timelines and benchmarks agree. */
export type TimelineName =
  | 'role_changed'
  | 'fault_seen'
  | 'server_suspected'
  | 'elected'
  | 'claim_refused'
  | 'snapshot_collected'
  | 'restored'
  | 'service_answering'
  | 'restart_in_place'
  | 'resigned'
  | 'handover_started'
  | 'handover_finished'
  | 'merge_started'
  | 'merge_finished'
  | 'merge_failed'
  /** Winner side: a loser's merge landed; this server continues its lineage in a new term. */
  | 'merge_landed'
  /** Candidate side of a dead fork (a snapshot whose server died before a merge): merge into its server. */
  | 'dead_fork_merge_started'
  | 'dead_fork_merged'
  | 'dead_fork_merge_failed'
  /** refuse-to-split: a serving node lost the support of a majority and stopped its service. */
  | 'quorum_lost'
  /** refuse-to-split: this node would claim but waits for a majority's support (logged once per election). */
  | 'election_waits_for_quorum'
  /** The process terminates (signal or uncaught error): last words sent, nothing handled after. */
  | 'terminating'

/** Outputs of the core: what the runtime (or the simulator) must do. */
export type CoreEffect =
  | { type: 'send'; to: NodeId; msg: ControlMessage }
  | { type: 'broadcast'; msg: ControlMessage }
  /** Restart the service in place: on its current state, or on the newest local snapshot. */
  | { type: 'start-service'; from: 'current' | 'snapshot'; snapshot: SnapshotRef | null }
  /** Collect `snapshot` (null: none exists, start empty) from `sources`, materialise it, start the service. */
  | { type: 'restore'; snapshot: SnapshotRef | null; sources: NodeId[] }
  | { type: 'cancel-restore' }
  /** `keep_aside`: copy the state directory aside after the stop (it may hold unreplicated changes). */
  | { type: 'stop-service'; reason: string; keep_aside?: boolean }
  /**
   * `for_output`: taken for output waiting at the front door (output commit), not by the interval: it
   * may be covered by the head snapshot whatever its age (`snapshot-covered`).
   */
  | { type: 'take-snapshot'; snapshot: SnapshotRef; final: boolean; for_output?: boolean }
  /**
   * Output commit: `snapshot` (this server's own) is stored on k candidates: release every byte the
   * service sent before that snapshot's capture froze it.
   */
  | { type: 'release-output'; snapshot: SnapshotRef; holders: NodeId[] }
  /** Loser side of a heal: archive changes since `fork`, hand them to `winner`, wait for its confirmation. */
  | {
      type: 'run-merge'
      winner: NodeId
      fork: ForkPoint | null
      attempt: number
      /** What the archive reaches: the loser's lineage head, or the dead fork's snapshot (offer `head`). */
      head: SnapshotRef | null
      /**
       * Dead fork: this node does not serve; materialise `head` from the local store (without starting
       * the service), archive it since `fork` and offer it. The node stays a candidate throughout.
       */
      dead_fork?: boolean
    }
  /** `members`: every node this one has heard of (refuse-to-split counts majorities of them across restarts). */
  | { type: 'persist'; term: number; members?: NodeId[] }
  | { type: 'exit' }
  | { type: 'timeline'; name: TimelineName; role: Role; term: number; fields: Record<string, unknown> }
