import assert from 'node:assert/strict'
import { EventEmitter } from 'node:events'
import { performance } from 'node:perf_hooks'
import type { HostPort, KeyPair } from 'hyperdht'
import type { SecretStream } from 'hyperswarm'
import Protomux from 'protomux'
import type { Logger } from '../lib/log.ts'
import { type ControlApi, ControlWorker, prewarmControlWorker } from './control-link.ts'
import { ControlPlane, type ControlPlaneOptions, type HeardState, type HelloInfo } from './control-plane.ts'
import {
  type AdmitBody,
  type ControlMessage,
  DEFAULT_MAX_FRAME_BYTES,
  encodeFrame,
  FrameKind,
} from './frames.ts'
import { installHypercorePatches } from './hypercore-patches/index.ts'
import { assertIdentity, controlKeyPair, deriveAdmissionKey, deriveBlockKey, deriveTopic } from './keys.ts'
import { Lane, type LaneDialOutcome } from './lane.ts'
import { type PeerDownReason, PeerTable, type PeerTableView } from './peer-table.ts'
import { DEFAULT_PHI_OPTIONS, type PhiAccrualOptions } from './phi-accrual.ts'
import { Plane } from './plane.ts'
import { cutTransport, type Session, Sessions } from './sessions.ts'
import {
  type CollectProgress,
  type CollectResult,
  type IndexEntry,
  type PublishInput,
  SnapshotFeeds,
} from './snapshot-feeds.ts'

export type { HelloInfo } from './control-plane.ts'

export type ValidationResult = { ok: true; value: unknown } | { ok: false; reason: string }

export interface FederationOptions {
  keyPair: KeyPair
  /** 32-byte federation secret. */
  secret: Uint8Array
  /** DHT bootstrap nodes (a local testnet's, or the deployment's); undefined: the public DHT's. */
  bootstrap: HostPort[] | undefined
  /** Address every DHT socket binds to. */
  host?: string
  storageDir: string
  name: string
  priority: number
  /** Core-level check of a control message, after the overlay checked the envelope. */
  validate: (msg: unknown) => ValidationResult
  log: Logger
  /** Interval of the overlay's own keep-alive ping to every admitted peer. */
  heartbeat_interval_ms?: number
  phi?: Partial<PhiAccrualOptions>
  /** A peer that has not proved the secret by then is dropped. */
  admission_timeout_ms?: number
  max_frame_bytes?: number
  /** 0 (default): every node keeps every snapshot block; r >= 1: r holders per blob. */
  replication_factor?: number
  /** Per-block timeout of snapshot fetches (collect retries up to collect_attempts times). */
  block_timeout_ms?: number
  collect_attempts?: number
  collect_concurrency?: number
  /** How often `peer-suspicion` reports phi per peer (for the UI). */
  suspicion_report_interval_ms?: number
  /** Period of re-announcing and re-looking-up the topic (catches peers that joined at the same time). */
  rediscover_interval_ms?: number
  /** Run the control plane in a worker thread (default) or on the caller's thread. */
  control_in_worker?: boolean
  /** Carry snapshot data on a direct TCP lane where the peer's lane is reachable (lane.ts). */
  lane?: boolean
  /** TCP port the lane listens on (0: any free port). */
  lane_port?: number
  /** Port peers are told to dial (a port forwarded to lane_port); 0: lane_port as bound. */
  lane_advertised_port?: number
  /** A lane dial (TCP connect plus Noise handshake) that takes longer fails over to the data plane. */
  lane_connect_timeout_ms?: number
  /** This node's front door address told to peers ('': every address, they use ours as they see it). */
  front_door_host?: string | null
}

const DEFAULTS = {
  host: '127.0.0.1',
  heartbeat_interval_ms: 100,
  admission_timeout_ms: 1000,
  max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
  replication_factor: 0,
  block_timeout_ms: 5000,
  collect_attempts: 3,
  collect_concurrency: 8,
  suspicion_report_interval_ms: 250,
  rediscover_interval_ms: 5000,
  control_in_worker: true,
  lane: true,
  lane_port: 0,
  lane_advertised_port: 0,
  lane_connect_timeout_ms: 3000,
  front_door_host: null,
}

/**
 * Overlay defaults of the failure detector: with 100 ms pings, phi 8 is reached about 620 ms after the
 * last frame (mean + ~5.2 std, std floored at 100 ms), which tolerates scheduling hiccups of a few
 * hundred ms on a loaded machine and still detects well under a second. Pings travel on the control
 * plane, so bulk replication does not queue them.
 */
export const OVERLAY_PHI_OPTIONS: PhiAccrualOptions = {
  ...DEFAULT_PHI_OPTIONS,
  min_std_dev_ms: 100,
  first_interval_ms: 100,
  // Two seconds' worth of the configured interval: a stall in a young connection's history must not
  // push detection past a second.
  prior_intervals: 20,
}

prewarmControlWorker() // see there: a control plane that comes up late makes a node elect itself

/** Time the control worker's epoch-ms stamps on this thread's monotonic clock. */
const localMs = (epoch_ms: number) => epoch_ms - performance.timeOrigin
const MEND_INTERVAL_MS = 20
/**
 * A peer's data connection is mended only after its control connection has been up this long. Discovery
 * connects the data plane within milliseconds; dialling at once collided with the peer's own dial, and
 * (the control plane being in its own thread) with a peer whose control connection had just been
 * dropped while its peer-down was still on its way here: the peer's new data connection was reset.
 */
const MEND_GRACE_MS = 1000
/** After a failed lane dial, wait this long before the next (doubling per failure, up to the max). */
const LANE_RETRY_MS = 1000
const LANE_RETRY_MAX_MS = 60_000
/** The smaller key dials a peer's lane too when the greater key's dials got none up this long. */
const LANE_SECOND_DIAL_MS = 5000
/** Redials of an ended lane before a verdict (a redial reset before its handshake is tried again). */
const LANE_CONFIRM_DIALS = 3
/** UDP receive buffer of the data plane (bulk replication); see Plane.sizeBuffers. */
const DATA_RECV_BUFFER_BYTES = 8 * 1024 * 1024

/**
 * A node's membership in a federation: admission, control messages, failure detection, snapshot store.
 * Two hyperswarms (planes): the control plane (control-plane.ts, in a worker thread of its own) carries
 * admission, pings and control messages; the data plane (here) carries admission and then hypercore
 * replication only, so bulk transfer never delays a heartbeat, neither on the wire nor in the event loop.
 * Where a peer's data lane (a direct TCP connection, lane.ts) is reachable, its data travels there and
 * the data plane's hyperswarm is not used for that peer.
 * A peer is up while its control connection is admitted and heard from.
 *
 * Events:
 *   'peer-up'         (key: string, hello: HelloInfo)      admitted, or heard again after suspicion
 *   'peer-down'       (key: string, reason: PeerDownReason)
 *   'message'         (from: string, msg: unknown)          validated control message
 *   'peer-suspicion'  (key: string, phi: number)            periodic, for the UI
 *   'admission-refused' (key: string, reason: string)
 *   'snapshot'        ({ writer, id, bytes_total })         a remote writer published a snapshot
 *   'snapshot-held'   ({ writer, id, blobs })               this node holds its share of it (blob hashes)
 *   'isolation'       ({ isolated: boolean })               test nemesis started / ended (isolate())
 *   'data-connection' (key: string, 'lane' | 'hyperswarm')  a data connection to `key` was admitted
 *   'lane-ended'      (key: string, { verdict: 'gone' | 'alive' | 'unknown', redial, dials })  a lane
 *                     ended from the peer's side and was redialled (see confirmGone)
 */
export class Federation extends EventEmitter {
  readonly key: string
  readonly store: SnapshotFeeds
  private readonly opts: Required<Omit<FederationOptions, 'phi'>> & { phi: PhiAccrualOptions }
  /** Public key of this node's control plane (derived from the identity). */
  readonly controlKey: string
  /** The control plane's view of every peer, mirrored from its events. */
  private readonly table = new PeerTable()
  /** Peers with an admitted control connection (sendable), from the control plane's events: since when. */
  private readonly connected = new Map<string, number>()
  private readonly control: ControlApi
  private readonly data: Plane
  private readonly lane: Lane | null
  /** The port this node's lane listens on, once started (null: no lane). */
  lane_port: number | null = null
  /** Peers' lane addresses (from their hellos) and our dials to them. */
  private readonly laneAddresses = new Map<string, { host: string; port: number }>()
  /** Peers' front door addresses (from their hellos). */
  private readonly frontDoors = new Map<string, string>()
  private readonly laneDials = new Map<string, { inflight: boolean; failures: number; next_ms: number }>()
  /** Peers whose lane ended and whose redial (the confirmation) is under way. */
  private readonly confirming = new Set<string>()
  /** Data connections (data plane and lane): admission, then replication. */
  private readonly dataSessions: Sessions
  private started = false
  private timers: NodeJS.Timeout[] = []
  private isolation: { timer: NodeJS.Timeout; done: (() => void)[] } | null = null
  private local = { role: 'candidate', term: 0 }
  /** The state last handed to the control plane (advertise() skips a repeat). */
  private advertised = ''
  private closing = false

  constructor(options: FederationOptions) {
    super()
    assertIdentity(options.keyPair)
    const phi = { ...OVERLAY_PHI_OPTIONS, ...options.phi }
    this.opts = { ...DEFAULTS, ...options, phi }
    this.key = options.keyPair.publicKey.toString('hex')
    this.controlKey = controlKeyPair(options.keyPair).publicKey.toString('hex')
    this.store = new SnapshotFeeds({
      storageDir: options.storageDir,
      keyPair: options.keyPair,
      blockKey: deriveBlockKey(options.secret),
      log: options.log,
      replication_factor: this.opts.replication_factor,
      members: () => [this.key, ...this.table.reachableKeys()],
      block_timeout_ms: this.opts.block_timeout_ms,
      collect_attempts: this.opts.collect_attempts,
      collect_concurrency: this.opts.collect_concurrency,
    })
    const controlOptions: ControlPlaneOptions = {
      keyPair: options.keyPair,
      secret: options.secret,
      bootstrap: this.opts.bootstrap,
      host: this.opts.host,
      name: this.opts.name,
      priority: this.opts.priority,
      heartbeat_interval_ms: this.opts.heartbeat_interval_ms,
      phi,
      admission_timeout_ms: this.opts.admission_timeout_ms,
      max_frame_bytes: this.opts.max_frame_bytes,
      suspicion_report_interval_ms: this.opts.suspicion_report_interval_ms,
      rediscover_interval_ms: this.opts.rediscover_interval_ms,
    }
    this.control = this.opts.control_in_worker
      ? new ControlWorker(controlOptions, options.log)
      : new ControlPlane(controlOptions, options.log)
    this.control.on('peer-up', (key: string, info: HelloInfo) => this.onPeerUp(key, info))
    this.control.on('peer-down', (key: string, reason: PeerDownReason) => this.peerDown(key, reason))
    this.control.on('heard', (key: string, state: HeardState) => {
      this.table.heard(key, performance.now(), state)
      if (state.published !== undefined) this.store.announced(key, state.published)
      this.store.writerRole(key, state.role)
    })
    this.control.on('message', (key: string, body: unknown) => this.onMessage(key, body))
    this.control.on('suspicion', (key: string, phi_value: number, last_heard_epoch_ms: number) => {
      const entry = this.table.get(key)
      if (entry && entry.last_heard_ms < localMs(last_heard_epoch_ms)) {
        this.table.heard(key, localMs(last_heard_epoch_ms))
      }
      this.emit('peer-suspicion', key, phi_value)
    })
    this.control.on('admission-refused', (key: string, reason: string) =>
      this.emit('admission-refused', key, reason),
    )
    this.dataSessions = new Sessions({
      plane: 'data',
      admissionKey: deriveAdmissionKey(options.secret),
      admission_timeout_ms: this.opts.admission_timeout_ms,
      max_frame_bytes: this.opts.max_frame_bytes,
      log: options.log,
      admissionFrame: (_session, proof) => {
        const admit: AdmitBody = { proof }
        return encodeFrame(FrameKind.Admit, admit, this.opts.max_frame_bytes)
      },
      onFrame: (session, decoded) => {
        if (session.admitted) this.dataSessions.drop(session, 'frame after admission on the data plane')
        else if (decoded.kind !== FrameKind.Admit) {
          this.dataSessions.refuse(session, 'first data frame is not an admit')
        } else if (!this.dataSessions.proofValid(session, decoded.body.proof)) {
          this.dataSessions.refuse(session, 'bad admission proof')
        } else this.admitData(session)
      },
      // Liveness is the control plane's business, except for the evidence a lane's end gives (below);
      // only a peer that went away is held.
      onClosed: (session, reason) => {
        if (reason !== 'closed') return
        if (this.lane?.carried(session.conn)) void this.confirmGone(session.key)
        else this.data.closed(session.conn_key)
      },
      onRefused: (key, reason) => this.emit('admission-refused', key, reason),
    })
    this.data = new Plane({
      bootstrap: this.opts.bootstrap,
      host: this.opts.host,
      log: this.opts.log,
      name: 'data',
      recv_buffer_bytes: DATA_RECV_BUFFER_BYTES,
      keyPair: options.keyPair,
      topic: deriveTopic(options.secret),
      rediscover_interval_ms: this.opts.rediscover_interval_ms,
      onConnection: (conn) => this.dataSessions.accept(conn),
      refuseDial: (key) => this.laneSession(key) !== null,
    })
    this.lane = this.opts.lane
      ? new Lane({
          keyPair: options.keyPair,
          host: this.opts.host,
          port: this.opts.lane_port,
          connect_timeout_ms: this.opts.lane_connect_timeout_ms,
          log: this.opts.log,
          onConnection: (conn) => this.dataSessions.accept(conn),
        })
      : null
    this.store.on('snapshot', (info) => this.emit('snapshot', info))
    this.store.on('snapshot-held', (info) => this.emit('snapshot-held', info))
    // Peers read our new index on our next ping.
    this.store.on('published', () => {
      if (this.started && !this.closing) this.advertise()
    })
  }

  /** Install the hypercore patches, open the store, join both planes' topics and wait until the announces are flushed. */
  async start(): Promise<void> {
    assert(!this.started, 'already started')
    this.started = true
    // Needed from the first replication on; checking them (a probe pair of cores) overlaps the store's opening.
    await Promise.all([installHypercorePatches(), this.store.ready()])
    this.lane_port = this.lane ? await this.lane.start() : null
    const advertised = this.lane_port === null ? null : this.opts.lane_advertised_port || this.lane_port
    await Promise.all([
      this.control.start({ lane_port: advertised, front_door_host: this.opts.front_door_host }),
      this.data.start(),
    ])
    this.advertise()
    this.timers.push(setInterval(() => this.mendDataPlane(), MEND_INTERVAL_MS))
  }

  /**
   * Resolves once every control frame sent so far was acknowledged (true), or after `timeout_ms`: the
   * last words of a process about to exit (its `resign`) reach the peers first.
   */
  flushControl(timeout_ms: number): Promise<boolean> {
    return this.started && !this.closing ? this.control.flush(timeout_ms) : Promise.resolve(false)
  }

  /** Teardown: timers, swarms (peers see the close at once, after last words are flushed), then the store. */
  async close(): Promise<void> {
    if (this.closing) return
    this.closing = true
    for (const t of this.timers) clearInterval(t)
    this.timers = []
    this.endIsolation()
    this.dataSessions.close()
    await Promise.all([this.control.close(), this.data.close(), this.lane?.close()])
    await this.store.close()
  }

  /**
   * Partition injection, a testing aid (a Jepsen-style nemesis): drop every connection on both planes,
   * dial nobody and close any new connection at once for `duration_ms`, then reconnect normally (the
   * dial holds the isolation caused are cleared). Calling it again while isolated restarts the clock. Peers see this node's connections close, so both sides report
   * peer-down; after the isolation both report peer-up again. Resolves when the isolation ends.
   */
  isolate(duration_ms: number): Promise<void> {
    assert(this.started && !this.closing, 'isolate() needs a started federation')
    assert(Number.isFinite(duration_ms) && duration_ms > 0, 'isolation duration must be > 0 ms')
    const done: (() => void)[] = []
    if (this.isolation) {
      clearTimeout(this.isolation.timer)
      done.push(...this.isolation.done)
    } else {
      this.opts.log.warn({ duration_ms }, 'isolated (test nemesis): every connection dropped')
      this.control.isolate()
      this.data.isolate()
      this.lane?.isolate()
      this.emit('isolation', { isolated: true })
    }
    const ended = new Promise<void>((resolve) => done.push(resolve))
    this.isolation = { timer: setTimeout(() => this.endIsolation(), duration_ms), done }
    return ended
  }

  private endIsolation(): void {
    const isolation = this.isolation
    if (!isolation) return
    this.isolation = null
    clearTimeout(isolation.timer)
    if (!this.closing) {
      this.control.rejoin()
      this.data.rejoin()
      this.lane?.rejoin()
      this.opts.log.warn('isolation ended: reconnecting')
      this.emit('isolation', { isolated: false })
    }
    for (const resolve of isolation.done) resolve()
  }

  /** Role and term this node advertises in its hello and pings (set by the runtime). */
  setLocalState(state: { role: string; term: number }): void {
    this.local = { role: state.role, term: state.term }
    this.advertise()
  }

  /** Role, term and the length after our last whole publish, for our hello and pings. */
  private advertise(): void {
    const state = { ...this.local, published: this.store.publishedLength() }
    // The runtime sets its state after every event (20 ticks a second): only a change crosses to the
    // control thread (a postMessage per tick was ~2.5 % of a core per idle node in the fault lab).
    const key = `${state.role} ${state.term} ${state.published}`
    if (key === this.advertised) return
    this.advertised = key
    this.control.setLocalState(state)
  }

  peers(): PeerTableView {
    return this.table.view({ key: this.key, ...this.local })
  }

  /** Send a control message to one admitted peer. Returns false if it is not connected. */
  send(peerKey: string, msg: ControlMessage): boolean {
    const frame = encodeFrame(FrameKind.Control, msg, this.opts.max_frame_bytes)
    if (!this.connected.has(peerKey)) return false
    this.control.send(peerKey, frame)
    return true
  }

  /** Send to every admitted peer; returns how many it was sent to. */
  broadcast(msg: ControlMessage): number {
    const frame = encodeFrame(FrameKind.Control, msg, this.opts.max_frame_bytes)
    if (this.connected.size > 0) this.control.broadcast(frame)
    return this.connected.size
  }

  /**
   * Control-plane counters: frames (hello, ping, control) and their bytes, plus the bytes written on
   * the wire by the currently open connections (control plane alone, and both planes).
   */
  stats(): {
    frames_sent: number
    frame_bytes_sent: number
    frames_received: number
    frame_bytes_received: number
    wire_bytes_written: number
    control_wire_bytes_written: number
    connections: number
  } {
    const control = this.control.stats()
    let data_wire_bytes_written = 0
    for (const conn of this.dataConnections()) {
      data_wire_bytes_written += (conn as { rawBytesWritten?: number }).rawBytesWritten ?? 0
    }
    return { ...control, wire_bytes_written: control.control_wire_bytes_written + data_wire_bytes_written }
  }

  publish(input: PublishInput, readBlob: (hash: string) => Promise<Uint8Array>): Promise<IndexEntry> {
    return this.store.publish(input, readBlob)
  }

  collect(
    writer: string,
    id: string,
    sink: (hash: string, bytes: Uint8Array) => Promise<void>,
    onProgress?: (progress: CollectProgress) => void,
  ): Promise<CollectResult> {
    return this.store.collect(writer, id, sink, onProgress)
  }

  forget(ids: readonly string[]): Promise<void> {
    return this.store.forget(ids)
  }

  snapshots(writer: string): IndexEntry[] {
    return this.store.snapshots(writer)
  }

  /** Test aid: tear the transport out from under every connection of both planes (no goodbye). */
  cutConnections(): void {
    this.control.cut()
    for (const conn of this.dataConnections()) cutTransport(conn)
  }

  private *dataConnections(): Iterable<SecretStream> {
    yield* this.data.connections()
    if (this.lane) yield* this.lane.connections()
  }

  /** What carries snapshot data to and from `key`: its lane, the hyperswarm data plane, or nothing yet. */
  dataTransport(key: string): 'lane' | 'hyperswarm' | null {
    const session = this.dataSessions.admitted.get(key)
    if (!session || session.closed) return null
    return this.lane?.carries(session.conn) ? 'lane' : 'hyperswarm'
  }

  /**
   * The protomux of the admitted data connection to `key` (lane or data plane), for channels of other
   * layers (the front door's forwarding streams); null while none is admitted. Only an admitted
   * connection is ever returned: a peer that did not prove the secret cannot reach these channels.
   */
  dataMux(key: string): Protomux | null {
    const session = this.dataSessions.admitted.get(key)
    if (!session || session.closed) return null
    return Protomux.from(session.conn)
  }

  /** The front door address a peer told in its hello (null: it has none, or we never heard it). */
  frontDoorHost(key: string): string | null {
    return this.frontDoors.get(key) ?? null
  }

  /** How many admitted data connections travel on lanes (the rest on the data plane). */
  dataTransports(): { lane: number; plane: number } {
    let lane = 0
    for (const key of this.dataSessions.admitted.keys()) if (this.dataTransport(key) === 'lane') lane++
    return { lane, plane: this.dataSessions.admitted.size - lane }
  }

  // ---- control-plane events ----------------------------------------------------------------------

  private onPeerUp(key: string, info: HelloInfo): void {
    if (this.closing) return
    if (!this.connected.has(key)) this.connected.set(key, performance.now())
    const wasReachable = this.table.get(key)?.reachable === true
    if (info.lane) this.laneAddresses.set(key, info.lane)
    else this.laneAddresses.delete(key)
    if (info.front_door) this.frontDoors.set(key, info.front_door)
    else this.frontDoors.delete(key)
    if (info.published !== undefined) this.store.announced(key, info.published)
    this.store.writerRole(key, info.role)
    this.table.up(key, info, performance.now())
    this.store.follow(key)
    if (!wasReachable) this.emit('peer-up', key, info)
    this.store.replace()
  }

  private onMessage(key: string, body: unknown): void {
    // Not connected: closed, or dropped for an invalid message while its next frames were on their way.
    if (this.closing || !this.connected.has(key)) return
    this.table.heard(key, performance.now())
    const checked = this.opts.validate(body)
    if (!checked.ok) {
      this.connected.delete(key)
      this.control.drop(key, `invalid message: ${checked.reason}`)
      return
    }
    this.emit('message', key, checked.value)
  }

  private peerDown(key: string, reason: PeerDownReason): void {
    // Silence and lane evidence leave the control connection in place: a peer heard again is up again.
    if (reason === 'closed' || reason === 'rejected') this.connected.delete(key)
    if (!this.table.down(key, reason)) return
    this.opts.log.info({ peer: key, reason }, 'peer down')
    this.laneDials.delete(key) // a peer that comes back gets a fresh lane dial
    this.dropData(key)
    this.emit('peer-down', key, reason)
    if (!this.closing) this.store.replace()
  }

  // ---- evidence from connection events -----------------------------------------------------------

  /**
   * A peer's data lane (TCP) ended from its side (FIN, reset or error; not closed by us). When a process
   * dies and its machine lives on (crash, OOM kill, SIGKILL), its kernel ends every TCP connection at
   * once and closes its listening socket, so an immediate redial of the lane is refused: that pair of
   * events is evidence the process is gone, acted on at once (peer-down 'gone'). A blip on a working
   * network ends the lane too, but a live process answers the redial (the lane is back, nothing else
   * happens); a cut network or a frozen process lets the redial time out, which proves nothing: silence
   * (phi) decides then. A redial that connects and is reset before the handshake (a listener closing
   * under it) is tried again, at most LANE_CONFIRM_DIALS times.
   */
  private async confirmGone(key: string): Promise<void> {
    const address = this.laneAddresses.get(key)
    if (!this.lane || !address || this.closing || this.isolation || this.confirming.has(key)) return
    if (!this.table.get(key)?.reachable) return
    this.confirming.add(key)
    const started_ms = performance.now()
    let outcome: LaneDialOutcome = 'failed'
    let dials = 0
    try {
      while (dials < LANE_CONFIRM_DIALS) {
        dials++
        outcome = await this.lane.dial(key, address.host, address.port)
        if (outcome !== 'reset') break
      }
    } finally {
      this.confirming.delete(key)
    }
    const verdict = outcome === 'refused' ? 'gone' : outcome === 'up' ? 'alive' : 'unknown'
    const fields = {
      peer: key,
      verdict,
      redial: outcome,
      dials,
      ms: Math.round(performance.now() - started_ms),
    }
    this.emit('lane-ended', key, { verdict, redial: outcome, dials })
    if (verdict !== 'gone') {
      this.opts.log.info(
        fields,
        verdict === 'alive'
          ? 'data lane ended; the peer answered: a blip'
          : 'data lane ended; the redial proved nothing: silence decides',
      )
      if (verdict === 'unknown') this.data.closed(key)
      return
    }
    if (this.closing || this.isolation || !this.table.get(key)?.reachable) return
    this.opts.log.warn(fields, 'peer gone: its data lane ended and the redial was refused')
    this.control.gone(key)
    this.peerDown(key, 'gone')
  }

  // ---- data plane --------------------------------------------------------------------------------

  /** A member proved the secret on a data connection; only now does it replicate. */
  private admitData(session: Session): void {
    const key = session.conn_key // on the data plane the Noise key is the identity
    const onLane = this.lane?.carries(session.conn) === true
    const current = this.laneSession(key)
    // The lane carries this peer's data already; of two lanes (both sides dialled), both sides keep
    // the one the greater key dialled, so they never each close the one the other kept.
    if (current && (!onLane || this.laneDialler(current) > this.laneDialler(session))) {
      this.dataSessions.dismiss(session)
      return
    }
    this.dataSessions.admit(session, key) // a lane session replaces a data-plane one
    if (onLane) {
      const dial = this.laneDials.get(key)
      if (dial) dial.failures = 0
      this.opts.log.info({ peer: key }, 'data lane up')
    }
    this.data.admitted(key)
    this.data.undial(key)
    this.store.replicate(session.conn) // a refused peer never sees snapshot data
    this.store.follow(key)
    this.opts.log.debug({ peer: key }, 'data connection admitted')
    this.emit('data-connection', key, onLane ? 'lane' : 'hyperswarm')
  }

  /**
   * Close the data connection of a peer the control plane lost. A dead peer's data connection lingers
   * until its timeout (~5 s) and hypercore keeps asking it for blocks meanwhile; closed, its requests go
   * to the other holders at once. No dial hold on our side: if the peer is alive it reconnects.
   */
  private dropData(key: string): void {
    this.data.undial(key)
    this.dataSessions.discard(key)
  }

  /**
   * Every reachable peer needs a data connection too (snapshots, merge archives). Where it is missing,
   * the side with the greater key dials it until admitted; one dialler, so no simultaneous-dial race.
   * Lanes: the greater key dials first; the other side dials too once LANE_SECOND_DIAL_MS have passed
   * without a lane (the greater side may sit behind a NAT that lets it dial out but not be dialled).
   */
  private mendDataPlane(): void {
    const now = performance.now()
    for (const [key, since_ms] of this.connected) {
      if (!this.table.get(key)?.reachable || this.laneSession(key)) continue
      if (key > this.key) {
        if (now - since_ms >= LANE_SECOND_DIAL_MS) this.dialLane(key, now)
        continue
      }
      this.dialLane(key, now)
      if (now - since_ms < MEND_GRACE_MS || this.dataSessions.admitted.has(key)) continue
      this.data.dial(key)
    }
  }

  /** Key of the side that dialled a lane session. */
  private laneDialler(session: Session): string {
    return session.conn.isInitiator ? this.key : session.conn_key
  }

  /** The admitted session of `key` if it travels on a lane. */
  private laneSession(key: string): Session | null {
    const session = this.dataSessions.admitted.get(key)
    return session && !session.closed && this.lane?.carries(session.conn) ? session : null
  }

  /**
   * Dial the peer's lane unless a dial is under way or backing off. Dials are spaced LANE_RETRY_MS
   * apart even when they succeed, so a lane the peer keeps closing is not redialled in a tight loop.
   */
  private dialLane(key: string, now_ms: number): void {
    const address = this.laneAddresses.get(key)
    if (!this.lane || !address || this.isolation) return
    let dial = this.laneDials.get(key)
    if (!dial) {
      dial = { inflight: false, failures: 0, next_ms: 0 }
      this.laneDials.set(key, dial)
    }
    if (dial.inflight || now_ms < dial.next_ms) return
    const state = dial
    state.inflight = true
    void this.lane.dial(key, address.host, address.port).then((outcome) => {
      const ok = outcome === 'up'
      state.inflight = false
      if (!ok) state.failures++
      const backoff_ms = Math.min(LANE_RETRY_MAX_MS, LANE_RETRY_MS * 2 ** Math.max(0, state.failures - 1))
      state.next_ms = performance.now() + backoff_ms
      if (!ok && state.failures === 1) {
        this.opts.log.info(
          { peer: key, host: address.host, port: address.port },
          'data lane unreachable: the hyperswarm data plane carries this peer',
        )
      }
    })
  }
}
