import type { Logger } from '../../lib/log.ts'
import { assert } from '../core/assert.ts'
import type { DriverEventKind } from '../core/io.ts'
import { ReplicaCore, type ReplicaEffect, type ReplicaEvent, type ReplicaState } from '../core/replicas.ts'
import type { NodeId } from '../core/types.ts'
import type { ServiceDriver } from '../drivers/driver.ts'
import type { Route } from '../frontdoor/route.ts'

export interface ReplicaRunnerOptions {
  id: NodeId
  priority: number
  /** The manifest's `replicas`. */
  replicas: number
  heartbeat_interval_ms: number
  /** Before this long after start the runner only listens (peers' states arrive; no start at once). */
  join_wait_ms: number
  /** A silent peer stops counting after this long (a peer whose connection closed: at once). */
  suspect_ms: number
  /** A node whose service failed leaves its slot to a candidate for this long. */
  failed_cooldown_ms: number
  now: () => number
  log: Logger
  driver: ServiceDriver
  /** Runs work on the driver after everything queued before it (the node's one driver queue). */
  onDriver: <T>(work: (driver: ServiceDriver) => Promise<T>) => Promise<T>
  broadcast: (msg: ReplicaState) => void
  /** The member's data connection is admitted (the front door can forward to it now). */
  reachable: (key: string) => boolean
  /** Something the front door routes by changed (serving set, local health). */
  changed: () => void
}

export type ReplicaHealth = 'unknown' | 'ok' | 'down'

/** What `sustain status` shows of a Type0 node. */
export interface ReplicaStatus {
  replicas: number
  serving: boolean
  health: ReplicaHealth
  /** The nodes serving now as this node knows it (itself included while serving). */
  servers: NodeId[]
}

/**
 * A Type0 service in the runtime (Table 1: no state, several copies at once): ReplicaCore (pure,
 * core/replicas.ts) decides whether this node is one of the `replicas` serving nodes; this runs the
 * service accordingly and gives the front door every serving replica to spread clients over. No
 * snapshot is taken, nothing is restored and nothing is merged: a replica that fails is replaced by
 * the next candidate starting the service on its own (empty) state. SustainNode keeps NodeCore for
 * membership and terms with this node not eligible (`can_serve: false`), so NodeCore never elects.
 */
export class ReplicaRunner {
  private core: ReplicaCore | null = null
  /** Peers' states heard before the join wait ended, replayed into the core when it starts. */
  private readonly early = new Map<NodeId, ReplicaState>()
  private health_: ReplicaHealth = 'down'
  private readonly ready_ms: number
  private stopped = false

  constructor(private readonly opts: ReplicaRunnerOptions) {
    assert(Number.isInteger(opts.replicas) && opts.replicas >= 1, 'replicas must be a positive integer')
    this.ready_ms = opts.now() + opts.join_wait_ms
  }

  get serving(): boolean {
    return this.core?.serving ?? false
  }

  get health(): ReplicaHealth {
    return this.health_
  }

  tick(): void {
    const now_ms = this.opts.now()
    if (this.core === null) {
      if (now_ms < this.ready_ms) return
      this.core = new ReplicaCore(
        {
          id: this.opts.id,
          priority: this.opts.priority,
          replicas: this.opts.replicas,
          heartbeat_interval_ms: this.opts.heartbeat_interval_ms,
          suspect_ms: this.opts.suspect_ms,
          failed_cooldown_ms: this.opts.failed_cooldown_ms,
        },
        now_ms,
      )
      for (const [from, msg] of this.early) this.handle({ type: 'message', from, msg, now_ms })
      this.early.clear()
    }
    this.handle({ type: 'tick', now_ms })
  }

  onMessage(from: NodeId, msg: ReplicaState): void {
    if (this.core === null) this.early.set(from, msg)
    else this.handle({ type: 'message', from, msg, now_ms: this.opts.now() })
  }

  onPeerDown(peer: NodeId): void {
    this.early.delete(peer)
    if (this.core !== null) this.handle({ type: 'peer-down', peer, now_ms: this.opts.now() })
    this.opts.changed()
  }

  /** The driver's news of the local service. */
  onDriver(kind: DriverEventKind): void {
    if (kind === 'answering') {
      this.health_ = 'ok'
      this.opts.changed()
      return
    }
    // exited, probe-failed, unusable: this replica is no good now; it gives up its slot for a while.
    this.health_ = 'down'
    if (kind !== 'exited') void this.opts.onDriver((d) => d.stop(`replica ${kind}`)).catch(() => {})
    if (this.core !== null) this.handle({ type: 'service-exited', now_ms: this.opts.now() })
    this.opts.changed()
  }

  /**
   * The routes to every serving replica: this node's while it serves and its service may answer (a
   * process proves it listens by accepting; probes may be absent), and every serving peer that is
   * reachable over an admitted data connection.
   */
  routes(): NonNullable<Route>[] {
    if (this.core === null) return []
    const out: NonNullable<Route>[] = []
    for (const id of this.core.servers(this.opts.now())) {
      if (id === this.opts.id) {
        const may_answer =
          this.health_ === 'ok' || (this.health_ === 'unknown' && this.opts.driver.connect_proves_listening)
        if (may_answer) out.push({ kind: 'local' })
      } else if (this.opts.reachable(id)) out.push({ kind: 'remote', key: id })
    }
    return out
  }

  status(): ReplicaStatus {
    return {
      replicas: this.opts.replicas,
      serving: this.serving,
      health: this.health_,
      servers: this.core?.servers(this.opts.now()) ?? [],
    }
  }

  close(): void {
    this.stopped = true
  }

  private handle(event: ReplicaEvent): void {
    if (this.stopped) return
    const core = this.core
    assert(core !== null, 'the replica core runs once the join wait is over')
    const before = core.serving
    for (const effect of core.handle(event)) this.execute(effect)
    if (core.serving !== before) this.opts.changed()
  }

  private execute(effect: ReplicaEffect): void {
    switch (effect.type) {
      case 'broadcast':
        this.opts.broadcast(effect.msg)
        return
      case 'start-service':
        this.health_ = 'unknown'
        this.opts.log.info(
          { event: 'replica_serving', replicas: this.opts.replicas },
          'replica starts serving',
        )
        void this.opts
          .onDriver((d) => d.start())
          .catch((error: unknown) => {
            this.opts.log.error({ err: error }, 'replica service start failed')
            this.onDriver('exited')
          })
        return
      case 'stop-service':
        this.health_ = 'down'
        this.opts.log.info({ event: 'replica_stopped', reason: effect.reason }, 'replica stops serving')
        void this.opts.onDriver((d) => d.stop(effect.reason)).catch(() => {})
        return
      case 'run-merge':
        // Only a planted bug makes one; a Type0 service has nothing to merge.
        throw new Error(`a Type0 replica asked to merge with ${effect.with}: never (no state)`)
    }
  }
}
