import { cp, mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { writeFileAtomic } from '../../lib/atomic-write.ts'
import type { Logger } from '../../lib/log.ts'
import { Federation, type KeyPair, LAST_WORDS_FLUSH_MS } from '../../overlay/index.ts'
import { deltaBytes, imageBytes } from '../../snapshot/index.ts'
import type { SustainConfig } from '../config/schema.ts'
import { assert } from '../core/assert.ts'
import { DEFAULT_CORE_CONFIG } from '../core/config.ts'
import type { CoreEffect, CoreEvent, DriverEventKind } from '../core/io.ts'
import { earlierInTerm, type ForkPoint } from '../core/lineage.ts'
import { type ControlMessage, type MergeOfferMessage, validateControlMessage } from '../core/messages.ts'
import { NodeCore } from '../core/node.ts'
import { type ReplicaState, validateReplicaState } from '../core/replicas.ts'
import { mergePolicyFor, type ServiceType } from '../core/service-type.ts'
import type { NodeId, SnapshotRef } from '../core/types.ts'
import type { Capture, DriverEvent, ServiceDriver } from '../drivers/driver.ts'
import { MdnsResponder, mdnsName } from '../frontdoor/dns/mdns.ts'
import { DnsServer } from '../frontdoor/dns/server.ts'
import { FrontDoor } from '../frontdoor/front-door.ts'
import { OutputCommit } from '../frontdoor/output-commit.ts'
import type { FrontDoorPort } from '../frontdoor/ports.ts'
import { chooseRoute, type Route } from '../frontdoor/route.ts'
import { VirtualIp } from '../frontdoor/vip.ts'
import { bootstrapNodes } from './dht-bootstrap.ts'
import { DurableOutbox } from './durable-outbox.ts'
import { HelperInfo } from './helper-info.ts'
import { LOAD_REPORT_INTERVAL_MS, loadFigure, roomBytes, sampleLoad } from './load-figure.ts'
import { MergeCoordinator } from './merge.ts'
import { nodePaths } from './paths.ts'
import { type PersistedFile, readPersisted } from './persisted.ts'
import { catchUpTarget, type RecoveryInput, type RecoveryPoint, recoveryPoint } from './recovery-point.ts'
import { ReplicaRunner } from './replica-runner.ts'
import { SnapshotRepository } from './snapshot-repository.ts'
import { SnapshotRetry } from './snapshot-retry.ts'
import { overlayReplicationFactor, type SnapshotHeld, SnapshotShares } from './snapshot-shares.ts'
import type { NodeStatus } from './status.ts'
import { logTimeline } from './timeline-log.ts'
import { isTopCandidate, type WarmStandby } from './warm-standby.ts'

/** A bind address that listens on every address of the machine. */
function isWildcard(host: string): boolean {
  return host === '0.0.0.0' || host === '::'
}

function isLoopback(host: string): boolean {
  return host.startsWith('127.') || host === '::1'
}

/** A Type0 replica's heartbeat (core/replicas.ts), told apart from NodeCore's control messages. */
function isReplicaState(msg: unknown): boolean {
  return typeof msg === 'object' && msg !== null && (msg as { type?: unknown }).type === 'replica-state'
}

/** A helper's `info` hears of newer snapshots at most this often; of splits and heals at once. */
const HELPER_INFO_SNAPSHOT_INTERVAL_MS = 10_000
/** How often the recovery point's age is checked (an error is logged when it gets stuck). */
const RECOVERY_CHECK_INTERVAL_MS = 1000
/** A candidate that is no longer the one an election would pick keeps its prestarted copy this long. */
const PRESTART_DROP_AFTER_MS = 10_000
/** With output commit a gc waits for a quiet moment between takes at most this many snapshot intervals. */
const GC_OVERDUE_INTERVALS = 10

export interface NodeOptions {
  data_dir: string
  config: SustainConfig
  keyPair: KeyPair
  log: Logger
  /** The service driver; null for a node that only stores snapshots (it is never elected). */
  driver: ServiceDriver | null
  /** The front door's ports (loadFrontDoorPorts); none: no front door. */
  front_door_ports?: FrontDoorPort[]
  /** The service's type (Table 1, core/service-type.ts): Type3 serves only on a majority side. */
  service_type?: ServiceType | null
  /** A Type0 service's `replicas` (manifest): this many nodes serve at once (replica-runner.ts); null: one server. */
  replicas?: number | null
  /** Time base for the core, in milliseconds. */
  now?: () => number
  tick_ms?: number
}

/** Observers of a running node (the control socket streams these to `sustain leave` and the UI). */
export type NodeNotice =
  | { kind: 'timeline'; name: string; fields: Record<string, unknown>; role: string; term: number }
  | { kind: 'progress'; what: 'restore' | 'replicate'; id: string; bytes_done: number; bytes_total: number }
  /** `leave`: how a requested leave ended (absent when the node stopped for another reason). */
  | { kind: 'exit'; leave?: LeaveOutcome }

/** A leave ends well when nothing was served or a successor serves; otherwise `reason` says what happened. */
export type LeaveOutcome = { ok: true; successor: NodeId | null } | { ok: false; reason: string }

/**
 * One Sustain node: the pure core plus the parts that do I/O (overlay, snapshot store, driver). Core
 * events are handled one at a time; effects that take time (capture, restore, collect, merge) run as
 * tasks whose outcome comes back as a core event, so the core never waits on I/O.
 */
export class SustainNode {
  readonly id: NodeId
  private readonly log: Logger
  private readonly now: () => number
  private core!: NodeCore
  private federation!: Federation
  private merger!: MergeCoordinator
  /** Merge offers are applied one after another (one merge per fork). */
  private accepting: Promise<void> = Promise.resolve()
  /** This node's snapshots: store, engine, the core-id index and the store queue (snapshot-repository.ts). */
  private snapshots!: SnapshotRepository
  private tick_timer: NodeJS.Timeout | null = null
  /** Since when this node is not the candidate an election would pick (keepPrestarted), or null. */
  private not_top_since_ms: number | null = null
  private recovery_timer: NodeJS.Timeout | null = null
  private load_timer: NodeJS.Timeout | null = null
  /** The load figure the core last took (load-figure.ts); known before the first election. */
  private reported_load = 0
  /** Free disk for the state the core last took (load-figure.ts roomBytes; null: not measurable). */
  private reported_room: number | null = null
  /** When the stuck recovery point was last logged (null: not stuck). */
  private stuck_logged_ms: number | null = null
  /** When the last gc was queued (this.now()): with output commit at most one per snapshot interval. */
  private gc_at_ms = Number.NEGATIVE_INFINITY
  /** takeSnapshot calls running (capture to publish). */
  private takes_running = 0
  /** Since when this node serves (for "stuck": a young service has no snapshot yet). */
  private serving_since_ms: number | null = null
  private snapshot_retry!: SnapshotRetry
  /** Serialises everything that touches the service (start, stop, capture, restore). */
  private driver_queue: Promise<unknown> = Promise.resolve()
  /** Bumped by cancel-restore: a restore task that finds it changed gives up quietly. */
  private restore_generation = 0
  private replicating = new Set<string>()
  /** r-way replication (`snapshots.replication_factor` a number): shares held here; null: whole copies. */
  private shares: SnapshotShares | null = null
  /** Snapshots a restore is using (collect, materialise): garbage collection keeps them. */
  private readonly restoring = new Set<string>()
  /** What was written (or is being written) to the persisted state file. */
  private persisted: PersistedFile = { term: 0, members: [] }
  /** State writes, and the messages that must not leave before them. */
  private readonly outbox = new DurableOutbox<PersistedFile>(
    (state) => writeFileAtomic(this.paths.persisted, `${JSON.stringify(state)}\n`),
    (error) => {
      // A node that cannot keep its term must not speak with it: stop, as on a broken invariant.
      this.log.fatal({ err: error }, 'cannot persist the term and members; node stops')
      void this.close()
    },
  )
  /** Tells the service's helper when the node learns of a split, a heal or a newer snapshot. */
  private helper_info: HelperInfo | null = null
  /** Some known member is unreachable (as of the last peer event). */
  private split = false
  /** Last time every known member was reachable (wall clock ms), kept while split; null if never seen. */
  private all_online_ms: number | null = null
  private readonly listeners = new Set<(notice: NodeNotice) => void>()
  private stopped = false
  /** start() has returned (terminate() waits for it). */
  private start_finished = false
  private resolve_exit!: () => void
  readonly exited: Promise<void> = new Promise((resolve) => {
    this.resolve_exit = resolve
  })
  private last_snapshot_ms: number | null = null
  /** Latest phi per peer from the overlay's detector (for status and the UI). */
  private readonly phi = new Map<string, number>()
  private started_ms = 0
  /** Set by leave(): the role then, and how the hand-over ended (from the core's timeline). */
  private leave_requested: { role: string } | null = null
  private leave_outcome: LeaveOutcome | null = null
  private restore_progress_ms = 0
  private front_door: FrontDoor | null = null
  private mdns: MdnsResponder | null = null
  /** The service's virtual IP (front_door.vip): held while this node serves. */
  private vip: VirtualIp | null = null
  /** Zero-loss mode: holds what the service sends until the core releases it (null: output_commit off). */
  private output_commit: OutputCommit | null = null
  /** The candidates this server knows of were fewer than k when last looked (logged once per change). */
  private commit_short = false
  private dns: DnsServer | null = null
  /** `service.standby: warm`: the decoded copy a failover to this node swaps in (warm-standby.ts). */
  private warm: WarmStandby | null = null
  /** A Type0 service with `replicas`: runs it where ReplicaCore says (replica-runner.ts); null otherwise. */
  private replica: ReplicaRunner | null = null

  constructor(private readonly options: NodeOptions) {
    this.id = options.keyPair.publicKey.toString('hex')
    this.log = options.log
    // Epoch milliseconds that never jump: snapshot times compare across nodes (fork times for helpers),
    // and timers are immune to clock steps.
    this.now = options.now ?? (() => performance.timeOrigin + performance.now())
  }

  private get paths() {
    return nodePaths(this.options.data_dir)
  }

  async start(): Promise<void> {
    const { config } = this.options
    this.started_ms = this.now()
    this.snapshot_retry = new SnapshotRetry(config.timing.snapshot_interval_ms)
    this.snapshots = await SnapshotRepository.open({
      store_dir: this.paths.snapshots,
      index_path: this.paths.index,
      node: this.id,
      keep: config.snapshots.keep,
      log: this.log,
      now: this.now,
    })
    if (config.service?.standby === 'warm' && this.options.driver)
      this.warm = this.snapshots.warmStandby(this.paths.service_state)
    this.shares = overlayReplicationFactor(config) > 0 ? new SnapshotShares() : null
    const persisted = await readPersisted(this.paths.persisted)
    this.persisted = persisted
    const { held, stored } = await this.snapshots.complete()
    this.reported_load = loadFigure(sampleLoad(), config.election.capacity_weight)
    this.reported_room = await roomBytes(this.paths.dir, config.node.disk_reserve_bytes)
    this.core = new NodeCore({
      config: {
        ...DEFAULT_CORE_CONFIG,
        id: this.id,
        priority: config.node.priority,
        // Type0 replicas are run by ReplicaRunner: NodeCore keeps terms and members and never elects.
        can_serve: this.options.driver !== null && !this.replicaMode(),
        strategy: config.election.strategy,
        preempt: config.election.preempt,
        merge_direction: config.election.merge_direction,
        merge_policy: mergePolicyFor(this.options.service_type ?? 'type1', config.election.merge_policy),
        // Supporters count for fence_ms / 2 after their newest state: at least 5 heartbeats.
        fence_ms: Math.max(DEFAULT_CORE_CONFIG.fence_ms, 10 * config.timing.heartbeat_interval_ms),
        heartbeat_interval_ms: config.timing.heartbeat_interval_ms,
        join_wait_ms: config.timing.join_wait_ms,
        election_timeout_ms: config.timing.election_timeout_ms,
        snapshot_interval_ms: config.timing.snapshot_interval_ms,
        restart_budget: config.timing.restart_budget,
        restart_window_ms: config.timing.restart_window_ms,
        output_commit: this.outputCommitK(),
        ...(config.node.site !== undefined ? { site: config.node.site } : {}),
      },
      now_ms: this.now(),
      load: this.reported_load,
      ...(this.reported_room !== null ? { room_bytes: this.reported_room } : {}),
      persisted,
      members: persisted.members,
      held,
      // Dead forks survive a restart: the core finds them among the lineage heads stored here.
      stored,
    })
    this.federation = new Federation({
      keyPair: this.options.keyPair,
      secret: Buffer.from(config.federation.secret, 'hex'),
      bootstrap: bootstrapNodes(config),
      host: config.federation.host,
      lane: config.federation.lane.enabled,
      lane_port: config.federation.lane.port,
      lane_advertised_port: config.federation.lane.advertised_port,
      storageDir: this.paths.overlay,
      name: config.node.name,
      priority: config.node.priority,
      validate: (msg) => (isReplicaState(msg) ? validateReplicaState(msg) : validateControlMessage(msg)),
      log: this.log.child({ module: 'overlay' }),
      heartbeat_interval_ms: Math.min(100, config.timing.heartbeat_interval_ms),
      phi: { threshold: config.timing.phi_threshold },
      // Peers put our front door in their DNS answers; a wildcard bind: the address they reach us at.
      front_door_host: config.front_door
        ? isWildcard(config.front_door.bind)
          ? ''
          : config.front_door.bind
        : null,
      // A restore must not wait 5 s on a block asked of the dead server: retry other holders after 1 s.
      block_timeout_ms: 1000,
      collect_attempts: 10,
      replication_factor: overlayReplicationFactor(config),
    })
    this.federation.on('peer-up', (key: string) => {
      this.notePeers()
      this.dispatch({ type: 'peer-up', peer: key, now_ms: this.now() })
    })
    this.federation.on('peer-down', (key: string, reason: string) => {
      this.notePeers()
      this.replica?.onPeerDown(key)
      const why = reason === 'closed' || reason === 'gone' ? reason : 'suspected'
      this.dispatch({ type: 'peer-down', peer: key, reason: why, now_ms: this.now() })
    })
    this.merger = new MergeCoordinator({
      federation: this.federation,
      onDriver: (work) => this.onDriver(work),
      work_dir: this.options.data_dir,
      log: this.log,
      term: () => this.core.term,
      self_key: this.id,
      peer_name: (peer) => this.peerName(peer),
      control_socket: this.paths.socket,
    })
    this.federation.on('message', (from: string, raw: unknown) => {
      // The overlay ran validateControlMessage already; the cast is what it proved.
      if (isReplicaState(raw)) {
        this.replica?.onMessage(from, raw as ReplicaState) // validated as such by the overlay
        return
      }
      const msg = raw as ControlMessage
      if (msg.type === 'merge-offer') void this.acceptMerge(from, msg)
      else if (msg.type === 'merge-result') this.merger.onResult(msg)
      else this.dispatch({ type: 'message', from, msg, now_ms: this.now() })
    })
    this.federation.on('peer-suspicion', (key: string, phi: number) => this.phi.set(key, phi))
    this.federation.on('snapshot-held', (info: SnapshotHeld) => {
      void this.replicate(info)
    })
    const driver = this.options.driver
    if (driver) {
      this.helper_info = new HelperInfo({
        run: (verb, args, options) => driver.helper(verb, args, options),
        control_socket: this.paths.socket,
        log: this.log,
        snapshot_interval_ms: HELPER_INFO_SNAPSHOT_INTERVAL_MS,
      })
    }
    if (this.replicaMode() && driver) {
      const heartbeat_ms = config.timing.heartbeat_interval_ms
      this.replica = new ReplicaRunner({
        id: this.id,
        priority: config.node.priority,
        replicas: this.options.replicas!,
        heartbeat_interval_ms: heartbeat_ms,
        join_wait_ms: config.timing.join_wait_ms,
        // As NodeCore's fence: a peer silent for 10 heartbeats is gone (a closed connection: at once).
        suspect_ms: Math.max(DEFAULT_CORE_CONFIG.fence_ms, 10 * heartbeat_ms),
        failed_cooldown_ms: DEFAULT_CORE_CONFIG.resign_cooldown_ms,
        now: this.now,
        log: this.log.child({ module: 'replicas' }),
        driver,
        onDriver: (work) => this.onDriver(work),
        broadcast: (msg) => this.outbox.send(() => this.federation.broadcast({ ...msg })),
        reachable: (key) => this.federation.dataMux(key) !== null,
        changed: () => this.front_door?.update(),
      })
    }
    this.options.driver?.on('event', this.onDriverEvent)
    const ports = this.options.front_door_ports ?? []
    if (this.outputCommitK() !== null) {
      // Asked from a gate's read: the core hears of it once the read is done.
      this.output_commit = new OutputCommit(() =>
        queueMicrotask(() => this.dispatch({ type: 'output-waiting', now_ms: this.now() })),
      )
    }
    if (config.front_door?.vip) {
      this.vip = new VirtualIp(config.front_door.vip, this.log.child({ module: 'vip' }))
      this.vip.release('start') // not serving yet: a crash while serving may have left it here
    }
    if (config.front_door && ports.length > 0) {
      const front_door = new FrontDoor({
        ports,
        bind: config.front_door.bind,
        hold_ms: config.front_door.hold_ms,
        max_held: config.front_door.max_held,
        route: () => this.frontDoorRoute(),
        ...(this.replica ? { spread: () => this.replica!.routes() } : {}),
        mux: (key) => this.federation.dataMux(key),
        ...(config.front_door.minority === 'refuse' ? { refusing: () => this.core.lacksMajority } : {}),
        output_commit: () => this.output_commit,
        log: this.log.child({ module: 'front-door' }),
      })
      this.front_door = front_door
      // Streams from a member travel on its admitted data connection; a new one may carry held clients.
      this.federation.on('data-connection', (key: string) => {
        const mux = this.federation.dataMux(key)
        if (mux) front_door.attach(mux)
        front_door.update()
      })
      await front_door.start()
      const dns = config.front_door.dns
      if (dns) {
        const zone = (name: string) => ({
          name,
          ttl_s: dns.ttl_s,
          addresses: this.frontDoorAddresses(),
          serial: this.core.maxTerm,
        })
        this.dns = new DnsServer({
          host: config.front_door.bind,
          port: dns.port,
          zone: () => zone(dns.name.toLowerCase().replace(/\.$/, '')),
          log: this.log.child({ module: 'dns' }),
        })
        await this.dns.start()
        this.log.info({ event: 'dns_listening', name: dns.name, port: dns.port }, 'answering DNS')
        if (dns.mdns) {
          const name = mdnsName(dns.name)
          const host = config.federation.host
          this.mdns = new MdnsResponder({
            zone: () => zone(name),
            interface: isWildcard(host) ? null : host,
            log: this.log.child({ module: 'mdns' }),
          })
          await this.mdns.start()
          this.log.info({ event: 'mdns_listening', name }, 'answering mDNS')
        }
      }
      this.log.info(
        {
          event: 'front_door_listening',
          bind: config.front_door.bind,
          ports: ports.map((p) => [p.name, p.listen_port]),
        },
        'front door listening',
      )
    }
    await this.federation.start()
    this.dispatch({ type: 'joined', now_ms: this.now() })
    this.log.info(
      {
        event: 'node_started',
        key: this.id,
        term: persisted.term,
        held: held?.id ?? null,
        load: this.reported_load,
        room_bytes: this.reported_room,
        site: config.node.site ?? null,
      },
      'node started',
    )
    this.start_finished = true
    this.tick_timer = setInterval(() => {
      this.dispatch({ type: 'tick', now_ms: this.now() })
      if (!this.stopped) this.replica?.tick()
    }, this.options.tick_ms ?? 50)
    this.recovery_timer = setInterval(() => this.checkRecoveryPoint(), RECOVERY_CHECK_INTERVAL_MS)
    this.load_timer = setInterval(() => void this.reportLoad(), LOAD_REPORT_INTERVAL_MS)
  }

  /**
   * `capacity` election: the core ranks by the load and free disk peers report; a changed figure goes
   * out with the next state.
   */
  private async reportLoad(): Promise<void> {
    const config = this.options.config
    const room = await roomBytes(this.paths.dir, config.node.disk_reserve_bytes)
    const load = loadFigure(sampleLoad(), config.election.capacity_weight)
    if (this.stopped || (load === this.reported_load && room === this.reported_room)) return
    this.reported_load = load
    this.reported_room = room
    this.log.debug({ event: 'load_reported', load, room_bytes: room }, 'load reported')
    this.dispatch({ type: 'load', load, ...(room !== null ? { room_bytes: room } : {}), now_ms: this.now() })
  }

  /** Subscribe to timeline and progress notices; returns the unsubscribe function. */
  watch(listener: (notice: NodeNotice) => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  /**
   * This process is about to exit (a signal, an uncaught error): the core's last words (a `resign`) go
   * out at once and the node closes (the overlay flushes them before its connections go). Resolves once
   * they were acknowledged by every peer or after `flush_ms`, whichever is first; the close goes on.
   */
  async terminate(reason: string, flush_ms = LAST_WORDS_FLUSH_MS): Promise<boolean> {
    // Not before start() has finished: the core's `exit` would close the node beside a start still
    // opening things (the close then waited on a control worker never initialised, and the start opened
    // the overlay after it). A node stopped while starting is closed once the start is done (run.ts).
    if (this.stopped || !this.federation || !this.start_finished) return false
    this.dispatch({ type: 'terminate', reason, now_ms: this.now() })
    return this.federation.flushControl(flush_ms)
  }

  leave(): void {
    if (this.leave_requested === null) this.leave_requested = { role: this.core.role }
    this.dispatch({ type: 'leave', now_ms: this.now() })
  }

  /** What `sustain leave` reports: a hand-over completed, nothing to hand over, or why not. */
  private leaveOutcome(): LeaveOutcome | undefined {
    const requested = this.leave_requested
    if (requested === null) return undefined
    if (this.leave_outcome) return this.leave_outcome
    if (requested.role === 'candidate' || requested.role === 'electing') return { ok: true, successor: null }
    return { ok: false, reason: `the node stopped before the hand-over completed (it was ${requested.role})` }
  }

  /** The core's hand-over and merge stages decide the outcome of a requested leave. */
  private noteLeave(name: string, fields: Record<string, unknown>): void {
    if (this.leave_requested === null) return
    if (name === 'handover_finished') {
      const successor = typeof fields.successor === 'string' ? fields.successor : null
      this.leave_outcome = successor
        ? { ok: true, successor }
        : {
            ok: false,
            reason: 'no candidate could take over; the final snapshot stays in this data directory',
          }
    } else if (name === 'merge_finished') {
      const winner = String(fields.winner)
      this.leave_outcome = {
        ok: false,
        reason: `another server (${this.peerName(winner) ?? winner.slice(0, 8)}) appeared during the hand-over; this node's changes were merged into it instead`,
      }
    }
  }

  /**
   * Testing aid (a Jepsen-style nemesis): cut every overlay connection of this node for `duration_ms`,
   * so both sides of a partition run on real processes. Resolves when the isolation ends.
   */
  isolate(duration_ms: number): Promise<void> {
    this.log.warn({ event: 'isolated', duration_ms }, 'isolated on request (testing)')
    return this.federation.isolate(duration_ms)
  }

  snapshotNow(): void {
    this.dispatch({ type: 'snapshot-now', now_ms: this.now() })
  }

  status(): NodeStatus {
    const core = this.core
    const overlay = this.federation.peers()
    const names = new Map([...overlay.reachable, ...overlay.unreachable].map((p) => [p.key, p]))
    const newest = core.held
    return {
      node: {
        key: this.id,
        name: this.options.config.node.name,
        priority: this.options.config.node.priority,
        role: core.role,
        term: core.term,
        server: core.server,
        health: core.health,
        uptime_ms: Math.round(this.now() - this.started_ms),
        service_port: this.options.config.service?.port ?? null,
        load: this.reported_load,
        room_bytes: this.reported_room,
        site: this.options.config.node.site ?? null,
      },
      peers: core.peers().map((p) => ({
        key: p.id,
        name: names.get(p.id)?.name ?? null,
        priority: p.priority,
        role: p.role,
        term: p.term,
        reachable: p.reachable,
        last_heard_ms_ago: Math.round(this.now() - p.last_heard_ms),
        snapshot: p.snapshot?.id ?? null,
        health: p.health,
        phi: this.phi.has(p.id) ? Number(this.phi.get(p.id)!.toFixed(2)) : null,
        data: this.federation.dataTransport(p.id),
        load: p.load,
        room_bytes: p.room_bytes,
        site: p.site,
      })),
      recovery_point: this.recoveryPoint(),
      snapshot_failures: this.snapshot_retry.failures,
      snapshot: newest
        ? {
            id: newest.id,
            age_ms: this.last_snapshot_ms === null ? null : Math.round(this.now() - this.last_snapshot_ms),
            size_bytes: newest.size_bytes,
            held: this.snapshots.count,
          }
        : null,
      replicating: [...this.replicating],
      ...(this.front_door ? { front_door: this.front_door.snapshot() } : {}),
      ...(this.replica
        ? { replica: { ...this.replica.status(), open_by_route: this.front_door?.openByRoute() ?? {} } }
        : {}),
      output_commit: { k: this.outputCommitK(), ...this.output_commit?.stats() },
    }
  }

  /**
   * Front door addresses of this node and every reachable peer that has one, the server's first (the
   * name's DNS answer). A wildcard bind has no address of its own to give; peers give it as they see it.
   */
  private frontDoorAddresses(): string[] {
    const bind = this.options.config.front_door?.bind
    // A wildcard bind listens on the LAN address too (federation.host, where peers reach this node).
    const lan = this.options.config.federation.host
    const own = bind && !isWildcard(bind) ? bind : isWildcard(lan) || isLoopback(lan) ? null : lan
    const reachable = this.federation.peers().reachable.map((p) => p.key)
    const server = this.core.role === 'server' ? this.id : this.core.server
    const first = server !== null && (server === this.id || reachable.includes(server)) ? [server] : []
    const hostOf = (key: string) => (key === this.id ? own : this.federation.frontDoorHost(key))
    const hosts = [...first, this.id, ...reachable].map(hostOf)
    return [...new Set(hosts.filter((h): h is string => h !== null))]
  }

  /** Where the front door sends a new client now (route.ts chooseRoute, from the core's view). */
  private frontDoorRoute(): Route {
    const core = this.core
    const server = core.server
    const peer = server === null ? undefined : core.peers().find((p) => p.id === server)
    return chooseRoute({
      id: this.id,
      role: core.role,
      health: core.health,
      server,
      server_peer: peer ? { reachable: peer.reachable, role: peer.role } : null,
      connect_proves_listening: this.options.driver?.connect_proves_listening === true,
    })
  }

  /** The step close() waits on now (null: not closing, or closed): what a stuck stop is stuck in. */
  closing_step: string | null = null

  async close(): Promise<void> {
    if (this.stopped) return
    this.stopped = true
    this.vip?.release('node stopping') // first: no client may reach a node that no longer serves
    this.helper_info?.close()
    if (this.tick_timer) clearInterval(this.tick_timer)
    if (this.recovery_timer) clearInterval(this.recovery_timer)
    if (this.load_timer) clearInterval(this.load_timer)
    this.options.driver?.off('event', this.onDriverEvent)
    this.replica?.close()
    const step = async (name: string, work: Promise<unknown> | undefined) => {
      this.closing_step = name
      await work
    }
    await step('front door', this.front_door?.close())
    await step('dns', this.dns?.close())
    await step('mdns', this.mdns?.close())
    await step(
      'driver queue',
      this.driver_queue.catch(() => {}),
    )
    await step('outbox', this.outbox.drained())
    await step('driver', this.options.driver?.close())
    await step('federation', this.federation?.close())
    await step('codec pool', this.snapshots?.close())
    this.closing_step = null
    const leave = this.leaveOutcome()
    this.notify(leave ? { kind: 'exit', leave } : { kind: 'exit' })
    this.resolve_exit()
  }

  // ---------------------------------------------------------------- events in, effects out

  private dispatch(event: CoreEvent): void {
    if (this.stopped) return
    let effects: CoreEffect[]
    try {
      effects = this.core.handle(event)
    } catch (error) {
      // A broken core invariant is a bug: stop this node rather than act on a wrong state.
      this.log.fatal({ err: error, event: event.type }, 'core invariant violated; node stops')
      void this.close()
      return
    }
    // Before anything else of this event: a node that stopped serving drops the VIP first.
    this.vip?.serve(this.core.role === 'server')
    // Every term and member this event taught the core is queued for disk before anything is sent.
    for (const effect of effects)
      if (effect.type === 'persist') this.persistState(effect.term, effect.members)
    this.persistState(this.core.maxTerm)
    for (const effect of effects) this.execute(effect)
    if (this.core.role !== 'server') this.serving_since_ms = null
    else this.serving_since_ms ??= event.now_ms
    const local = { role: this.core.role, term: this.core.term }
    this.outbox.send(() => this.federation.setLocalState(local))
    this.reportInfo()
    this.front_door?.update()
  }

  /**
   * Every term this node has seen outlives a restart, not only the ones it claimed (a node that comes
   * back must never reuse or undercut a term), and so does every member it has heard of (refuse-to-split
   * must not count a majority of too few). Writes are chained, so the file only ever moves forward.
   */
  private persistState(term: number, members?: string[]): void {
    if (members === undefined && term <= this.persisted.term) return // the per-event common case
    const fresh = [...new Set(members ?? [])].filter((m) => !this.persisted.members.includes(m))
    if (term <= this.persisted.term && fresh.length === 0) return
    this.persisted = {
      term: Math.max(term, this.persisted.term),
      members: [...this.persisted.members, ...fresh].sort(),
    }
    this.outbox.persist(this.persisted)
  }

  /** Only a serving node's helper is told: its service is the one that may refuse or hold while split. */
  private reportInfo(): void {
    if (!this.helper_info || this.core.role !== 'server' || !this.options.driver?.running) return
    this.helper_info.update({
      split: this.split,
      newest_snapshot_ms: this.core.held?.time_ms ?? null,
      all_online_ms: this.split ? this.all_online_ms : Date.now(),
    })
  }

  /** A Type0 service whose manifest sets `replicas`: ReplicaRunner runs it, not NodeCore's election. */
  private replicaMode(): boolean {
    return this.options.driver !== null && (this.options.replicas ?? null) !== null
  }

  /** Output commit's k, or null when it is off (or there is no service to hold output of). */
  private outputCommitK(): number | null {
    const k = this.options.config.service?.output_commit ?? 'off'
    return k === 'off' || this.options.driver === null ? null : k
  }

  /**
   * Output commit waits for k candidates: with fewer members known, a server's clients get no answer
   * until more join. Not an error (members come and go); said loudly once each time it starts and ends.
   */
  private checkCommitCandidates(): void {
    const k = this.outputCommitK()
    if (k === null) return
    const peers = this.federation.peers()
    const candidates = peers.reachable.length
    const short = candidates < k
    if (short === this.commit_short) return
    this.commit_short = short
    if (short)
      this.log.warn(
        { event: 'output_commit_short', k, candidates, known: candidates + peers.unreachable.length },
        `output_commit k=${k} but ${candidates} candidates reachable: a server holds every answer until ${k} are`,
      )
    else this.log.info({ event: 'output_commit_ready', k, candidates }, 'enough candidates for output commit')
  }

  /** On every peer up or down (not per tick): whether some known member is unreachable, and since when. */
  private notePeers(): void {
    this.checkCommitCandidates()
    const split = this.federation.peers().unreachable.length > 0
    // Everyone was online until now: this event either ends a split or starts one.
    if (!split || !this.split) this.all_online_ms = Date.now()
    this.split = split
  }

  private readonly onDriverEvent = (event: DriverEvent): void => {
    const kind: DriverEventKind = event.kind
    this.log.info({ event: 'driver', ...event }, `service ${event.kind}`)
    if (this.replica) {
      this.replica.onDriver(kind)
      return
    }
    this.dispatch({ type: 'driver', kind, now_ms: this.now() })
  }

  private notify(notice: NodeNotice): void {
    for (const listener of this.listeners) listener(notice)
  }

  private onStore<T>(work: () => Promise<T>): Promise<T> {
    return this.snapshots.serial(work)
  }

  private onDriver<T>(work: (driver: ServiceDriver) => Promise<T>): Promise<T> {
    const driver = this.options.driver
    assert(driver !== null, 'a storage-only node has no service to act on')
    const run = this.driver_queue.then(() => work(driver))
    this.driver_queue = run.catch(() => {})
    return run
  }

  private execute(effect: CoreEffect): void {
    switch (effect.type) {
      case 'send':
        this.outbox.send(() => this.federation.send(effect.to, effect.msg))
        return
      case 'broadcast':
        this.outbox.send(() => this.federation.broadcast(effect.msg))
        return
      case 'timeline':
        logTimeline(this.log, effect)
        this.noteLeave(effect.name, effect.fields)
        this.notify({
          kind: 'timeline',
          name: effect.name,
          fields: effect.fields,
          role: effect.role,
          term: effect.term,
        })
        return
      case 'persist':
        return // queued before this event's messages (dispatch)
      case 'restore':
        void this.restore(effect.snapshot, ++this.restore_generation)
        return
      case 'cancel-restore':
        this.restore_generation++
        return
      case 'start-service':
        void this.restartInPlace(effect.from, effect.snapshot)
        return
      case 'stop-service':
        if (this.options.driver)
          void this.onDriver(async (d) => {
            await d.stop(effect.reason)
            if (effect.keep_aside)
              await this.keepStateAside(effect.reason, {}, 'changes not replicated before the stop')
          }).catch((error) => this.warn(error))
        return
      case 'take-snapshot':
        void this.takeSnapshot(effect.snapshot, effect.final, effect.for_output === true)
        return
      case 'release-output': {
        const released = this.output_commit?.release(effect.snapshot.id)
        // One line per snapshot that released something: the freeze-to-release time is the added latency.
        if (released)
          this.log.info(
            {
              event: 'output_released',
              id: effect.snapshot.id,
              chunks: released.chunks,
              commit_ms: Math.round(released.commit_ms),
              holders: effect.holders.length,
            },
            'output released',
          )
        return
      }
      case 'run-merge':
        void this.runMerge(effect.winner, effect.fork, effect.attempt, effect.head, effect.dead_fork === true)
        return
      case 'exit':
        void this.close()
        return
    }
  }

  private warn(error: unknown): void {
    this.log.warn({ err: error }, String((error as Error)?.message ?? error))
  }

  // ---------------------------------------------------------------- snapshots

  private async takeSnapshot(ref: SnapshotRef, final: boolean, for_output = false): Promise<void> {
    this.takes_running += 1
    try {
      await this.takeSnapshotNow(ref, final, for_output)
    } finally {
      this.takes_running -= 1
    }
  }

  private async takeSnapshotNow(ref: SnapshotRef, final: boolean, for_output: boolean): Promise<void> {
    const attempt = this.snapshot_retry.next(this.now(), final)
    if (!attempt.take) {
      // Not captured at all: the service is not paused for a snapshot that would fail the same way.
      this.log.debug(
        { event: 'snapshot_skipped', id: ref.id, retry_in_ms: attempt.retry_in_ms },
        attempt.reason,
      )
      this.dispatch({ type: 'snapshot-failed', id: ref.id, reason: attempt.reason, now_ms: this.now() })
      return
    }
    try {
      const started = this.now()
      const onFrozen = () => this.output_commit?.frozen(ref.id)
      const same_as = final ? undefined : this.headCapture(ref, for_output)
      let capture = await this.onDriver((d) => d.capture({ onFrozen, ...(same_as ? { same_as } : {}) }))
      if (!final && this.coveredByHead(ref, capture, for_output)) {
        await capture.release()
        this.dispatch({ type: 'snapshot-covered', id: ref.id, now_ms: this.now() })
        return
      }
      // Found unchanged but not covered after all: it holds no parts, so take the state itself.
      if (capture.parts_omitted) capture = await this.onDriver((d) => d.capture({ onFrozen }))
      assert(!capture.parts_omitted, 'a capture without parts would store an empty state')
      const captured = this.now()
      let result: Awaited<ReturnType<SnapshotRepository['take']>>
      let store_turn = captured
      try {
        const head = this.core.head
        result = await this.onStore(() => {
          store_turn = this.now()
          return this.snapshots.take(capture.parts, ref, head, attempt.fresh_base)
        })
      } finally {
        await capture.release()
      }
      const site = this.options.config.node.site
      const stored: SnapshotRef = {
        ...ref,
        size_bytes: deltaBytes(result.manifest),
        image_bytes: imageBytes(result.manifest),
        ...(site !== undefined ? { writer_site: site } : {}),
      }
      const encoded = this.now()
      const { published_ms: published } = await this.snapshots.publish(this.federation.store, stored, result)
      this.last_snapshot_ms = this.now()
      this.snapshot_retry.succeeded()
      this.log.info(
        {
          event: 'snapshot_taken',
          id: ref.id,
          pause_ms: Number(capture.pause_ms.toFixed(2)),
          total_ms: Math.round(this.now() - started),
          // Where the time goes (output commit waits for all of it): capture, encode, publish, index.
          capture_ms: Math.round(captured - started),
          store_wait_ms: Math.round(store_turn - captured),
          take_ms: Math.round(encoded - store_turn),
          ...Object.fromEntries(
            Object.entries(result.timings_ms).map(([k, v]) => [`take_${k}_ms`, Math.round(v)]),
          ),
          publish_ms: Math.round(published - encoded),
          delta_bytes: stored.size_bytes,
          ...(result.codec_refusals > 0 ? { raw_chunks_codec_refused: result.codec_refusals } : {}),
          ...(result.rebase_reason ? { rebased: result.rebase_reason } : {}),
          ...(attempt.fresh_base ? { fresh_base: true } : {}),
        },
        'snapshot taken',
      )
      this.dispatch({ type: 'snapshot-stored', snapshot: stored, now_ms: this.now() })
      await this.collectGarbage(true)
    } catch (error) {
      this.snapshot_retry.failed(String((error as Error)?.message ?? error), this.now())
      const failures = this.snapshot_retry.failures.consecutive
      // The next attempt changes strategy (a fresh base), then backs off: say so with the failure.
      this.log.warn(
        { err: error, id: ref.id, consecutive_failures: failures, fresh_base: attempt.fresh_base },
        failures === 1 ? 'snapshot failed; the next one encodes a fresh base' : 'snapshot failed again',
      )
      this.dispatch({ type: 'snapshot-failed', id: ref.id, reason: String(error), now_ms: this.now() })
    }
  }

  /**
   * Output commit's shortcut: a capture that found the head's state unchanged (no file copied, grown or
   * removed since the head's capture; most answers of an SMTP transaction write nothing durable) needs
   * no snapshot of its own: the head holds that state, so what this freeze covers is released with the
   * head (at once when the head is already stored on k). A capture the core started for waiting output
   * (`for_output`) may be covered whatever the head's age; one the interval started only while the head
   * is younger than the interval, so an idle service still stores one snapshot per interval (its
   * recovery point keeps moving; the core keeps the interval's timer running across covered captures).
   * Never for a final snapshot (a hand-over names the one it stored).
   */
  private coveredByHead(ref: SnapshotRef, capture: Capture, for_output: boolean): boolean {
    const commit = this.output_commit
    const head = this.core.head
    const { same_as, generation } = capture
    if (commit === null || head === null || same_as === undefined || generation === undefined) return false
    if (this.headCapture(ref, for_output) !== same_as) return false
    const released = commit.cover(ref.id, head.id)
    if (released === false) return false
    this.snapshots.adoptSameCapture(same_as, generation)
    this.log.info(
      {
        event: 'snapshot_covered',
        id: ref.id,
        by: head.id,
        pause_ms: Number(capture.pause_ms.toFixed(2)),
        ...(released ? { released_chunks: released.chunks, commit_ms: Math.round(released.commit_ms) } : {}),
      },
      'capture unchanged since the head snapshot: its output goes with the head',
    )
    return true
  }

  /**
   * The capture generation the head snapshot was taken from, while a capture for `ref` that finds it
   * unchanged may be covered by the head (output commit on, the head this server's own of this term and,
   * unless the capture is for waiting output, younger than the snapshot interval); else undefined.
   */
  private headCapture(ref: SnapshotRef, for_output: boolean): string | undefined {
    const head = this.core.head
    if (this.output_commit === null || head === null) return undefined
    if (head.writer !== this.id || head.term !== ref.term) return undefined
    const young = ref.time_ms - head.time_ms < this.options.config.timing.snapshot_interval_ms
    if (!young && !for_output) return undefined
    return this.snapshots.captureOf(head.id)
  }

  /** What a failover would restore now, and whether it has stopped moving (see recovery-point.ts). */
  private recoveryPoint(): RecoveryPoint {
    return recoveryPoint(this.recoveryInput())
  }

  private recoveryInput(): RecoveryInput {
    return {
      now_ms: this.now(),
      interval_ms: this.options.config.timing.snapshot_interval_ms,
      self: { id: this.id, role: this.core.role, held: this.core.held },
      server: this.core.server,
      peers: this.core.peers(),
      serving_since_ms: this.serving_since_ms,
    }
  }

  /** This candidate fell behind the server's snapshots: fetch the newest by id (see catchUpTarget). */
  private catchUp(): void {
    if (this.shares !== null) return // r-way: a node holds its share, not whole snapshots
    const target = catchUpTarget(this.recoveryInput())
    if (target === null || this.replicating.has(target.id) || this.snapshots.has(target.id)) return
    this.log.warn(
      { event: 'replication_behind', id: target.id, held: this.core.held?.id ?? null },
      'replication fell behind the server: fetching its newest snapshot by id',
    )
    void this.replicate({ writer: target.writer, id: target.id, blobs: [], blobs_total: 0 })
  }

  /** A recovery point that stopped moving is an error: logged when it sticks, again every limit, and when it moves. */
  private checkRecoveryPoint(): void {
    if (this.stopped) return
    this.keepPrestarted()
    this.catchUp()
    const point = this.recoveryPoint()
    const now = this.now()
    if (!point.stuck) {
      if (this.stuck_logged_ms !== null)
        this.log.info(
          { event: 'recovery_point_moving', id: point.id, age_ms: point.age_ms },
          'recovery point moves again',
        )
      this.stuck_logged_ms = null
      return
    }
    if (this.stuck_logged_ms !== null && now - this.stuck_logged_ms < point.limit_ms) return
    this.stuck_logged_ms = now
    const failures = this.snapshot_retry.failures
    this.log.error(
      {
        event: 'recovery_point_stuck',
        id: point.id,
        age_ms: point.age_ms,
        limit_ms: point.limit_ms,
        holders: point.holders,
        ...(failures.consecutive > 0
          ? { consecutive_failures: failures.consecutive, last_failure: failures.last_reason }
          : {}),
      },
      point.age_ms === null
        ? 'no snapshot has reached a candidate: a failover now restores nothing'
        : `recovery point stuck: a failover now loses ${Math.round(point.age_ms / 1000)} s of service state`,
    )
  }

  /** Fetch a snapshot another node published into the local store; true when it is complete here. */
  private async fetch(writer: string, id: string, what: 'restore' | 'replicate'): Promise<SnapshotRef> {
    const started = this.now()
    const result = await this.snapshots.collect(this.federation.store, writer, id, (progress) => {
      this.notify({ kind: 'progress', what, id, ...progress })
      if (what === 'restore') this.restoreProgressed()
    })
    const fields = {
      id,
      bytes: result.bytes_total,
      block_bytes: result.stats.block_bytes,
      derived: result.stats.derived,
      ms: Math.round(this.now() - started),
    }
    this.log.info({ event: 'snapshot_collected', ...fields }, 'snapshot collected')
    this.notify({
      kind: 'timeline',
      name: 'snapshot_collected',
      fields,
      role: this.core.role,
      term: this.core.term,
    })
    return result.ref
  }

  private async replicate({ writer, id, ...share }: SnapshotHeld): Promise<void> {
    if (this.stopped || this.snapshots.has(id) || this.replicating.has(id)) return
    this.replicating.add(id)
    try {
      if (this.shares !== null) return await this.holdShare(this.shares, writer, id, share)
      // Decided in the store's turn: a restore that started meanwhile holds the queue for itself.
      const ref = await this.onStore(async () =>
        this.skipsReplication(id) ? null : this.fetch(writer, id, 'replicate'),
      )
      if (ref === null) return
      this.dispatch({ type: 'snapshot-stored', snapshot: ref, now_ms: this.now() })
      this.warmUp(ref)
      await this.collectGarbage()
    } catch (error) {
      this.log.warn({ err: error, writer, id }, 'replication failed')
    } finally {
      this.replicating.delete(id)
    }
  }

  /**
   * r-way replication: this node holds its placement share of the snapshot (overlay `snapshot-held`),
   * not a complete copy; the core counts it as held (a restore collects the rest from the holders).
   */
  private async holdShare(
    shares: SnapshotShares,
    writer: string,
    id: string,
    share: Pick<SnapshotHeld, 'blobs' | 'blobs_total'>,
  ): Promise<void> {
    if (shares.has(id)) return
    const ref = await this.snapshots.publishedRef(this.federation.store, writer, id)
    shares.add(ref)
    this.log.info({ event: 'snapshot_share_held', id, writer, ...share }, 'snapshot share held')
    this.dispatch({ type: 'snapshot-stored', snapshot: ref, now_ms: this.now() })
    const forks = new Set(this.core.forks.map((f) => f.id))
    const dropped = shares.trim(
      this.options.config.snapshots.keep,
      (i) => this.restoring.has(i) || forks.has(i),
    )
    if (dropped.length > 0) await this.federation.forget(dropped)
  }

  /**
   * A replication not worth its store turn: the snapshot is held already (a restore collected it), or
   * this node restores a later snapshot of the same writer and term, which holds its state. On the
   * successor of a leave under load (bench/leave-steps.ts, load 35) replications of the leaver's earlier
   * snapshots queued ahead of the restore's collect, 150-550 ms each, one after another.
   */
  private skipsReplication(id: string): boolean {
    if (this.snapshots.has(id)) return true
    return [...this.restoring].some((restoring) => earlierInTerm(id, restoring))
  }

  /** A hand-over this node serves (its final snapshot) or answers (its restore) is under way. */
  private handoverPending(): boolean {
    return this.core.handingOver || this.core.role === 'restoring' || this.restoring.size > 0
  }

  /** Keep the newest `snapshots.keep` refs (and what the engine still needs); forget the rest everywhere. */
  private async collectGarbage(engine_too = false): Promise<void> {
    if (!engine_too && this.snapshots.count <= this.options.config.snapshots.keep) return
    // With output commit snapshots come back to back, each one's output waiting for it: a gc after each
    // (a scan of every blob, 0.5-1.7 s at load 30-40) held up the next take or collect in the store
    // queue. So at most one per interval, and none while another take runs (its store would wait) unless
    // GC_OVERDUE_INTERVALS went by: retention lags by at most that many intervals' snapshots.
    const now = this.now()
    const interval_ms = this.options.config.timing.snapshot_interval_ms
    if (this.outputCommitK() !== null) {
      const since_ms = now - this.gc_at_ms
      if (since_ms < interval_ms) return
      const another_take = this.takes_running > (engine_too ? 1 : 0)
      if (another_take && since_ms < GC_OVERDUE_INTERVALS * interval_ms) return
    }
    this.gc_at_ms = now
    // Decided inside the store queue: a restore that starts meanwhile protects its snapshot. Queued at
    // once (no await before it): a take queued after it would have its snapshot, written but not yet
    // indexed, removed as unkept (seen once captures got fast enough to queue a take in between).
    const dropped = await this.onStore(async () => {
      // A hand-over's final snapshot or a restore's collect waits in this queue behind a gc (a scan of
      // every blob, 0.3-1 s at load 35 on the leaver of bench/leave-steps.ts): none while either is under
      // way; the next take's or collect's gc catches up.
      if (this.handoverPending()) return []
      const head = this.core.head
      // A snapshot being restored stays, whatever its rank: after a fork, snapshots of a higher term (the
      // other side's) outrank a leaving server's final one, which then vanished under its successor.
      // So does a dead fork not yet merged (core `forks`): it may be the only copy of released output.
      const forks = new Set(this.core.forks.map((f) => f.id))
      const pinned = (id: string, engine_id: string) =>
        id === head?.id ||
        this.restoring.has(id) ||
        forks.has(id) ||
        this.warm?.pinned.has(engine_id) === true
      return this.snapshots.gc(pinned, engine_too)
    })
    if (dropped.length > 0) await this.federation.forget(dropped)
  }

  // ---------------------------------------------------------------- service

  private async restore(ref: SnapshotRef | null, generation: number): Promise<void> {
    const done = (ok: boolean, reason?: string) => {
      if (generation !== this.restore_generation) return
      this.dispatch({ type: 'restore-done', ok, snapshot: ref, reason, now_ms: this.now() })
    }
    if (ref !== null) this.restoring.add(ref.id)
    try {
      // Checked again in the store's turn: a replication of the same snapshot queued ahead (the leaver's
      // final one, announced as it was published) has collected it by then.
      if (ref !== null && !this.snapshots.has(ref.id))
        await this.onStore(async () => {
          if (!this.snapshots.has(ref.id)) await this.fetch(ref.writer, ref.id, 'restore')
        })
      if (generation !== this.restore_generation) return
      await this.onDriver(async (driver) => {
        if (generation !== this.restore_generation) return
        await driver.stop('restore')
        this.restoreProgressed()
        if (ref !== null) {
          const engine_id = this.snapshots.engineId(ref.id)!
          const started = this.now()
          const warm = await this.warm?.take(ref.id, engine_id, (dir) => driver.adoptState(dir))
          if (warm?.used)
            this.timeline('standby_used', { id: ref.id, decode_ms_saved: warm.marker.decode_ms })
          else if (warm)
            this.timeline('standby_not_used', { id: ref.id, reason: warm.reason, warm_id: warm.warm_id })
          if (!warm?.used) await this.materialise(ref, engine_id, driver)
          this.log.info(
            {
              event: 'state_materialised',
              id: ref.id,
              ms: Math.round(this.now() - started),
              warm: !!warm?.used,
            },
            'restored',
          )
          this.restoreProgressed()
        }
        await driver.start()
      })
      done(true)
    } catch (error) {
      this.log.warn({ err: error, id: ref?.id ?? null }, 'restore failed')
      done(false, String((error as Error).message ?? error))
    } finally {
      if (ref !== null) this.restoring.delete(ref.id)
    }
  }

  /** Rebuild `ref` into the driver's state; a local blob that fails its hash is collected again once. */
  private materialise(ref: SnapshotRef, engine_id: string, driver: ServiceDriver): Promise<void> {
    return this.snapshots.materialise(
      ref,
      engine_id,
      () => driver.stateWriter(),
      () => this.onStore(() => this.fetch(ref.writer, ref.id, 'restore')),
      (name, fields) => this.timeline(name, fields),
    )
  }

  /**
   * Manifest `prestart`: the node an election would pick (and a node electing or restoring) keeps a
   * copy of the service's command loaded and waiting (driver.prestart), so its start is a listen. A
   * node that stops being the top candidate drops its copy after PRESTART_DROP_AFTER_MS.
   */
  private keepPrestarted(): void {
    const driver = this.options.driver
    if (!driver?.prestart || !driver.dropPrestarted || this.stopped) return
    const role = this.core.role
    const now = this.now()
    let wanted = role === 'restoring'
    // A candidate with no server yet (formation: every node is top in its own view before it hears the
    // others) waits, as does a node electing (it prestarts once it restores): N copies starting at once
    // would only slow the first election.
    if (role === 'candidate' && this.core.server !== null) {
      const { config } = this.options
      const self = {
        id: this.id,
        priority: config.node.priority,
        load: this.reported_load,
        snapshot: this.core.held,
      }
      wanted = isTopCandidate(config.election.strategy, self, this.core.peers(), now)
    }
    if (wanted) {
      this.not_top_since_ms = null
      driver.prestart().catch((error: unknown) => this.log.warn({ err: error }, 'prestart failed'))
      return
    }
    if (role === 'server') return // its start took the copy
    this.not_top_since_ms ??= now
    const keep = role === 'candidate' || role === 'electing'
    if (keep && now - this.not_top_since_ms < PRESTART_DROP_AFTER_MS) return
    driver
      .dropPrestarted()
      .catch((error: unknown) => this.log.warn({ err: error }, 'dropping the prestarted service failed'))
  }

  /** Warm standby: decode a snapshot just collected, if this node is the one an election would pick. */
  private warmUp(ref: SnapshotRef): void {
    const { config } = this.options
    if (!this.warm || this.core.role !== 'candidate' || this.stopped) return
    const self = { id: this.id, priority: config.node.priority, load: 0, snapshot: this.core.held }
    if (!isTopCandidate(config.election.strategy, self, this.core.peers(), this.now())) return
    this.warm.prepare(ref.id, this.snapshots.engineId(ref.id)!).then(
      (marker) => marker && this.timeline('standby_warmed', { ...marker }),
      (error: unknown) => this.log.warn({ err: error, id: ref.id }, 'warm standby decode failed'),
    )
  }

  /** A runtime stage for the log, the timeline file and watchers. */
  private timeline(name: string, fields: Record<string, unknown>): void {
    this.log.info({ event: name, ...fields }, name.replaceAll('_', ' '))
    this.notify({ kind: 'timeline', name, fields, role: this.core.role, term: this.core.term })
  }

  /** Peers wait for a restore that progresses (core `restore-progress`); at most one event per tick. */
  private restoreProgressed(): void {
    const now = this.now()
    if (now - this.restore_progress_ms < (this.options.tick_ms ?? 50)) return
    this.restore_progress_ms = now
    this.dispatch({ type: 'restore-progress', now_ms: now })
  }

  private async restartInPlace(from: 'current' | 'snapshot', ref: SnapshotRef | null): Promise<void> {
    // A QEMU guest restarted on its current state reboots: its memory, and any acknowledged write held
    // there, is gone. With output commit every released byte's cause is in a stored snapshot, so the
    // guest comes back from the newest one instead (the lineage head) and loses nothing acknowledged.
    if (from === 'current' && this.options.driver?.kind === 'qemu' && this.output_commit !== null) {
      const head = this.core.head
      if (head) {
        this.log.info(
          { event: 'restart_from_snapshot', snapshot: head.id },
          'a guest restarts from its newest snapshot (output commit)',
        )
        from = 'snapshot'
        ref = head
      }
    }
    try {
      await this.onDriver(async (driver) => {
        await driver.stop('restart')
        if (from === 'snapshot' && ref && this.snapshots.has(ref.id)) {
          await this.snapshots.writeState(ref.id, () => driver.stateWriter())
        }
        await driver.start()
      })
    } catch (error) {
      this.log.error({ err: error }, 'service restart failed')
      this.dispatch({ type: 'driver', kind: 'exited', now_ms: this.now() })
    }
  }

  private peerName(key: string): string | undefined {
    const peers = this.federation.peers()
    return [...peers.reachable, ...peers.unreachable].find((p) => p.key === key)?.name
  }

  /** Loser side of a heal: merge through the helper, or keep the changes aside (policy or no helper). */
  private async runMerge(
    winner: string,
    fork: ForkPoint | null,
    attempt: number,
    head: SnapshotRef | null,
    dead_fork: boolean,
  ): Promise<void> {
    if (dead_fork) {
      // A candidate merges a dead fork: its snapshot becomes the (stopped) service's state for the archive.
      try {
        await this.materialiseFork(head)
      } catch (error) {
        const reason = `dead fork ${head?.id ?? 'none'} not materialised: ${String((error as Error).message ?? error)}`
        this.dispatch({ type: 'merge-done', ok: false, winner, reason, now_ms: this.now() })
        return
      }
    }
    // refuse-to-split keeps one server at a time; should two still meet, the loser's state is kept aside.
    if (this.options.config.election.merge_policy !== 'helper' || this.options.driver === null) {
      await this.keepLoserState(winner, fork?.id ?? null)
      return
    }
    let outcome: Awaited<ReturnType<MergeCoordinator['offer']>>
    try {
      outcome = await this.merger.offer(winner, fork, attempt, head, dead_fork)
    } catch (error) {
      outcome = { ok: false, reason: String((error as Error).message ?? error) }
    }
    if (outcome.ok === 'unsupported') {
      this.log.warn(
        { event: 'merge_unsupported' },
        'the service helper has no archive verb: keeping changes aside',
      )
      await this.keepLoserState(winner, fork?.id ?? null)
      return
    }
    const reason = outcome.ok ? undefined : outcome.reason
    this.dispatch({ type: 'merge-done', ok: outcome.ok, winner, reason, now_ms: this.now() })
  }

  /** Writes `ref` from the local store into the stopped service's state directory (no start). */
  private async materialiseFork(ref: SnapshotRef | null): Promise<void> {
    if (ref === null || !this.snapshots.has(ref.id)) throw new Error('not in the local store')
    await this.onDriver(async (driver) => {
      await driver.stop('merge')
      await this.snapshots.writeState(ref.id, () => driver.stateWriter())
    })
  }

  /**
   * Winner side: merge what a loser offers; the core takes a new term and snapshots; then answer. Offers
   * are handled one at a time, so a dead fork offered by two candidates is applied once: the second finds
   * it held (core `holdsFork`) and is answered ok without running the helper.
   */
  private acceptMerge(from: string, msg: MergeOfferMessage): Promise<void> {
    const next = this.accepting.then(() => this.acceptOne(from, msg))
    this.accepting = next.catch(() => {})
    return next
  }

  private async acceptOne(from: string, msg: MergeOfferMessage): Promise<void> {
    const head = msg.head ?? null
    if (msg.dead_fork === true && head !== null && this.core.holdsFork(head)) {
      this.log.info(
        { event: 'merge_already_held', from, id: msg.id, head: head.id },
        'dead fork already merged',
      )
      this.federation.send(from, { type: 'merge-result', term: this.core.term, id: msg.id, ok: true })
      return
    }
    const serving = this.core.role === 'server' && this.options.driver !== null
    const result = await this.merger.accept(from, msg, serving)
    // The core first: its new term goes into the state it broadcasts before the loser stops serving.
    if (result.ok) this.dispatch({ type: 'merged', from, head, now_ms: this.now() })
    this.federation.send(from, result)
    if (!result.ok)
      this.log.warn({ event: 'merge_refused', from, id: msg.id, reason: result.reason }, 'merge failed here')
  }

  /** Copies the stopped service's state directory to kept/<time>-<label>/ and reports where: never dropped. */
  private async keepStateAside(label: string, fields: Record<string, unknown>, what: string): Promise<void> {
    const aside = join(
      this.paths.kept,
      `${new Date().toISOString().replace(/[:.]/g, '-')}-${label.replace(/\W+/g, '-')}`,
    )
    await mkdir(this.paths.kept, { recursive: true })
    await cp(this.paths.service_state, aside, { recursive: true, errorOnExist: true }).catch(
      (error: NodeJS.ErrnoException) => {
        if (error.code !== 'ENOENT') throw error
      },
    )
    this.log.warn({ event: 'state_kept_aside', path: aside, ...fields }, `${what}: kept in ${aside}`)
  }

  /**
   * The loser of a heal without a merge helper (policy keep-higher, and until helpers merge): its state
   * since the fork is copied aside into the data directory and reported, never dropped.
   */
  private async keepLoserState(winner: string, fork: string | null): Promise<void> {
    let ok = true
    let reason: string | undefined
    try {
      await this.onDriver(async (driver) => {
        await driver.stop('merge')
        await this.keepStateAside(
          `fork-${fork ?? 'none'}`,
          { winner, fork },
          `changes since the split, to merge into the service on ${winner.slice(0, 8)}`,
        )
      })
    } catch (error) {
      ok = false
      reason = String(error)
    }
    this.dispatch({ type: 'merge-done', ok, winner, reason, now_ms: this.now() })
  }
}
