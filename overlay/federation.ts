import assert from 'node:assert/strict'
import { EventEmitter } from 'node:events'
import { performance } from 'node:perf_hooks'
import c from 'compact-encoding'
import type { HostPort, KeyPair } from 'hyperdht'
import type { SecretStream } from 'hyperswarm'
import Protomux, { type ProtomuxMessage } from 'protomux'
import type { Logger } from '../src/util/log.ts'
import {
  ADMISSION_PROTOCOL,
  type AdmitBody,
  CONTROL_PROTOCOL,
  type ControlMessage,
  DEFAULT_MAX_FRAME_BYTES,
  decodeFrame,
  encodeFrame,
  FrameKind,
  type HelloBody,
} from './frames.ts'
import {
  admissionProof,
  assertIdentity,
  controlKeyPair,
  deriveAdmissionKey,
  deriveBlockKey,
  deriveControlTopic,
  deriveTopic,
  signControlBinding,
  verifyAdmissionProof,
  verifyControlBinding,
} from './keys.ts'
import { type PeerDownReason, PeerTable, type PeerTableView } from './peer-table.ts'
import { DEFAULT_PHI_OPTIONS, PhiAccrual, type PhiAccrualOptions } from './phi-accrual.ts'
import { Plane } from './plane.ts'
import {
  type CollectProgress,
  type CollectResult,
  type IndexEntry,
  type PublishInput,
  SnapshotStore,
} from './store.ts'

export type ValidationResult = { ok: true; value: unknown } | { ok: false; reason: string }

export interface FederationOptions {
  keyPair: KeyPair
  /** 32-byte federation secret. */
  secret: Uint8Array
  /** DHT bootstrap nodes (a local testnet's, or the deployment's). */
  bootstrap: HostPort[]
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
}

export interface HelloInfo {
  name: string
  priority: number
  role: string
  term: number
}

/** One connection (on either plane) and what we know about it. */
interface Session {
  plane: 'control' | 'data'
  /** The connection's Noise key (hex): derived control key on the control plane, identity on the data plane. */
  conn_key: string
  /** The peer's identity (hex): the connection key on the data plane, from the verified hello on control. */
  key: string
  conn: SecretStream
  frame: ProtomuxMessage<Buffer> | null
  admitted: boolean
  closed: boolean
  admission_timer: NodeJS.Timeout | null
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

/** Connection keep-alive and idle timeout: a frozen or dead peer's connection closes after ~5 s. */
const CONN_KEEPALIVE_MS = 1000
const CONN_TIMEOUT_MS = 5000
const CHECK_INTERVAL_MS = 20
/** UDP receive buffer of the data plane (bulk replication); see Plane.sizeBuffers. */
const DATA_RECV_BUFFER_BYTES = 8 * 1024 * 1024
/**
 * A gap between two checks longer than the interval plus this means this node itself was paused (a
 * blocked event loop, CPU starvation, SIGSTOP). Timers run before I/O in Node's event loop, so right
 * after such a pause every peer looks silent while its heartbeats still wait in our sockets.
 */
const LOCAL_PAUSE_MS = 100

/**
 * A node's membership in a federation: admission, control messages, failure detection, snapshot store.
 * Two hyperswarms (planes): the control plane carries admission, pings and control messages; the data
 * plane carries admission and then hypercore replication only, so bulk transfer never delays a heartbeat.
 * A peer is up while its control connection is admitted and heard from.
 *
 * Events:
 *   'peer-up'         (key: string, hello: HelloInfo)      admitted, or heard again after suspicion
 *   'peer-down'       (key: string, reason: PeerDownReason)
 *   'message'         (from: string, msg: unknown)          validated control message
 *   'peer-suspicion'  (key: string, phi: number)            periodic, for the UI
 *   'admission-refused' (key: string, reason: string)
 *   'snapshot'        ({ writer, id, bytes_total })         a remote writer published a snapshot
 *   'snapshot-held'   ({ writer, id })                      this node holds its share of it
 *   'isolation'       ({ isolated: boolean })               test nemesis started / ended (isolate())
 */
export class Federation extends EventEmitter {
  readonly key: string
  readonly store: SnapshotStore
  private readonly opts: Required<Omit<FederationOptions, 'phi'>> & { phi: PhiAccrualOptions }
  /** Public key of this node's control plane (derived from the identity). */
  readonly controlKey: string
  private readonly admissionKey: Buffer
  private readonly table = new PeerTable()
  /** Admitted control sessions by peer identity. */
  private readonly sessions = new Map<string, Session>()
  /** Admitted data sessions (replicating) by peer identity. */
  private readonly dataSessions = new Map<string, Session>()
  private readonly pending = new Set<Session>()
  private readonly detectors = new Map<string, PhiAccrual>()
  private readonly control: Plane
  private readonly data: Plane
  private started = false
  private timers: NodeJS.Timeout[] = []
  private isolation: { timer: NodeJS.Timeout; done: (() => void)[] } | null = null
  private local = { role: 'candidate', term: 0 }
  private readonly counters = {
    frames_sent: 0,
    frame_bytes_sent: 0,
    frames_received: 0,
    frame_bytes_received: 0,
  }
  private closing = false
  private last_check_ms = performance.now()

  constructor(options: FederationOptions) {
    super()
    assertIdentity(options.keyPair)
    const phi = { ...OVERLAY_PHI_OPTIONS, ...options.phi }
    this.opts = { ...DEFAULTS, ...options, phi }
    this.key = options.keyPair.publicKey.toString('hex')
    const controlKeys = controlKeyPair(options.keyPair)
    this.controlKey = controlKeys.publicKey.toString('hex')
    this.admissionKey = deriveAdmissionKey(options.secret)
    this.store = new SnapshotStore({
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
    const plane = { bootstrap: this.opts.bootstrap, host: this.opts.host, log: this.opts.log }
    const rediscover_interval_ms = this.opts.rediscover_interval_ms
    this.control = new Plane({
      ...plane,
      name: 'control',
      keyPair: controlKeys,
      topic: deriveControlTopic(options.secret),
      rediscover_interval_ms,
      onConnection: (conn) => this.onConnection('control', conn),
    })
    this.data = new Plane({
      ...plane,
      name: 'data',
      recv_buffer_bytes: DATA_RECV_BUFFER_BYTES,
      keyPair: options.keyPair,
      topic: deriveTopic(options.secret),
      rediscover_interval_ms,
      onConnection: (conn) => this.onConnection('data', conn),
    })
    this.store.on('snapshot', (info) => this.emit('snapshot', info))
    this.store.on('snapshot-held', (info) => this.emit('snapshot-held', info))
  }

  /** Open the store, join both planes' topics and wait until the announces are flushed. */
  async start(): Promise<void> {
    assert(!this.started, 'already started')
    this.started = true
    await this.store.ready()
    await Promise.all([this.control.start(), this.data.start()])
    this.timers.push(setInterval(() => this.ping(), this.opts.heartbeat_interval_ms))
    this.timers.push(setInterval(() => this.check(), CHECK_INTERVAL_MS))
    this.timers.push(setInterval(() => this.reportSuspicion(), this.opts.suspicion_report_interval_ms))
  }

  /** Teardown: timers, swarms (peers see the close at once), then the store. */
  async close(): Promise<void> {
    if (this.closing) return
    this.closing = true
    for (const t of this.timers) clearInterval(t)
    this.timers = []
    this.endIsolation()
    for (const s of this.pending) if (s.admission_timer) clearTimeout(s.admission_timer)
    await Promise.all([this.control.close(), this.data.close()])
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
      this.opts.log.warn('isolation ended: reconnecting')
      this.emit('isolation', { isolated: false })
    }
    for (const resolve of isolation.done) resolve()
  }

  /** Role and term this node advertises in its hello and pings (set by the runtime). */
  setLocalState(state: { role: string; term: number }): void {
    this.local = { ...state }
  }

  peers(): PeerTableView {
    const view = this.table.view({ key: this.key, ...this.local })
    return view
  }

  /** Send a control message to one admitted peer. Returns false if it is not connected. */
  send(peerKey: string, msg: ControlMessage): boolean {
    const frame = encodeFrame(FrameKind.Control, msg, this.opts.max_frame_bytes)
    const session = this.sessions.get(peerKey)
    if (!session?.admitted || session.closed || !session.frame) return false
    this.sendFrame(session, frame)
    return true
  }

  /** Send to every admitted peer; returns how many it was sent to. */
  broadcast(msg: ControlMessage): number {
    const frame = encodeFrame(FrameKind.Control, msg, this.opts.max_frame_bytes)
    let sent = 0
    for (const s of this.sessions.values()) {
      if (s.admitted && !s.closed && s.frame) {
        this.sendFrame(s, frame)
        sent++
      }
    }
    return sent
  }

  /**
   * Control-plane counters: frames (hello, ping, control) and their bytes, plus the bytes written on
   * the wire by the currently open connections (includes replication traffic).
   */
  stats(): typeof this.counters & {
    wire_bytes_written: number
    control_wire_bytes_written: number
    connections: number
  } {
    const written = (plane: Plane) => {
      let bytes = 0
      for (const conn of plane.connections()) bytes += (conn as any).rawBytesWritten ?? 0
      return bytes
    }
    const control_wire_bytes_written = written(this.control)
    return {
      ...this.counters,
      wire_bytes_written: control_wire_bytes_written + written(this.data),
      control_wire_bytes_written,
      connections: this.sessions.size,
    }
  }

  private sendFrame(session: Session, frame: Buffer): void {
    if (!session.frame) return
    session.frame.send(frame)
    this.counters.frames_sent++
    this.counters.frame_bytes_sent += frame.byteLength
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

  // ---- connections -------------------------------------------------------------------------------

  private onConnection(plane: 'control' | 'data', conn: SecretStream): void {
    const conn_key = conn.remotePublicKey.toString('hex')
    conn.on('error', (error: Error) =>
      this.opts.log.debug({ peer: conn_key, plane, err: error.message }, 'connection error'),
    )
    if (this.closing) {
      conn.destroy()
      return
    }
    conn.setKeepAlive(CONN_KEEPALIVE_MS)
    conn.setTimeout(CONN_TIMEOUT_MS)
    const session: Session = {
      plane,
      conn_key,
      // On the data plane the Noise key is the identity; on the control plane the hello names it.
      key: plane === 'data' ? conn_key : '',
      conn,
      frame: null,
      admitted: false,
      closed: false,
      admission_timer: null,
    }
    this.pending.add(session)
    conn.on('close', () => this.onClose(session))
    session.admission_timer = setTimeout(
      () => this.refuse(session, 'admission timeout'),
      this.opts.admission_timeout_ms,
    )
    const handshakeHash = conn.handshakeHash
    if (!handshakeHash) {
      this.refuse(session, 'no handshake hash')
      return
    }
    const channel = Protomux.from(conn).createChannel({
      protocol: plane === 'control' ? CONTROL_PROTOCOL : ADMISSION_PROTOCOL,
      onopen: () => this.sendAdmission(session, handshakeHash),
      onclose: () => {
        if (!session.closed) conn.destroy()
      },
    })
    if (!channel) {
      this.refuse(session, 'channel already open')
      return
    }
    session.frame = channel.addMessage<Buffer>({
      encoding: c.raw,
      onmessage: (frame: Buffer) => {
        // Protomux rethrows TypeErrors as uncaught: nothing a peer sends may throw out of here.
        try {
          this.onFrame(session, frame)
        } catch (error) {
          this.opts.log.error({ peer: conn_key, err: error }, 'frame handler failed')
          this.drop(session, `handler error: ${(error as Error).message}`)
        }
      },
    })
    channel.open()
  }

  /** Our proof of the secret on this connection (control: plus the identity binding and hello info). */
  private sendAdmission(session: Session, handshakeHash: Buffer): void {
    const ownKey = session.conn.publicKey
    const proof = admissionProof(this.admissionKey, handshakeHash, ownKey)
    if (session.plane === 'data') {
      const admit: AdmitBody = { proof }
      this.sendFrame(session, encodeFrame(FrameKind.Admit, admit, this.opts.max_frame_bytes))
      return
    }
    const hello: HelloBody = {
      proof,
      identity: this.opts.keyPair.publicKey,
      binding: signControlBinding(this.opts.keyPair, handshakeHash, ownKey),
      name: this.opts.name,
      priority: this.opts.priority,
      ...this.local,
    }
    this.sendFrame(session, encodeFrame(FrameKind.Hello, hello, this.opts.max_frame_bytes))
  }

  private onFrame(session: Session, frame: Buffer): void {
    if (session.closed) return
    this.counters.frames_received++
    this.counters.frame_bytes_received += frame.byteLength
    const decoded = decodeFrame(frame, this.opts.max_frame_bytes)
    if (!decoded.ok) {
      this.drop(session, decoded.reason)
      return
    }
    if (session.plane === 'data') {
      if (session.admitted) this.drop(session, 'frame after admission on the data plane')
      else if (decoded.kind !== FrameKind.Admit) this.refuse(session, 'first data frame is not an admit')
      else this.admitData(session, decoded.body)
      return
    }
    if (!session.admitted) {
      if (decoded.kind !== FrameKind.Hello) {
        this.refuse(session, 'first frame is not a hello')
        return
      }
      this.admit(session, decoded.body)
      return
    }
    const now = performance.now()
    this.arrival(session.key, now)
    switch (decoded.kind) {
      case FrameKind.Hello:
        this.drop(session, 'second hello')
        return
      case FrameKind.Admit:
        this.drop(session, 'admit frame on the control plane')
        return
      case FrameKind.Ping:
        this.table.heard(session.key, now, decoded.body)
        return
      case FrameKind.Control: {
        this.table.heard(session.key, now)
        const checked = this.opts.validate(decoded.body)
        if (!checked.ok) {
          this.drop(session, `invalid message: ${checked.reason}`)
          return
        }
        this.emit('message', session.key, checked.value)
      }
    }
  }

  private proofValid(session: Session, proof: Uint8Array): boolean {
    const handshakeHash = session.conn.handshakeHash!
    return verifyAdmissionProof(this.admissionKey, handshakeHash, session.conn.remotePublicKey, proof)
  }

  /** Stop the admission timer; the session leaves `pending`. */
  private admitted(session: Session): void {
    if (session.admission_timer) clearTimeout(session.admission_timer)
    session.admission_timer = null
    session.admitted = true
    this.pending.delete(session)
  }

  /** Data plane: a member proved the secret; only now does this connection replicate. */
  private admitData(session: Session, admit: AdmitBody): void {
    if (!this.proofValid(session, admit.proof)) {
      this.refuse(session, 'bad admission proof')
      return
    }
    this.admitted(session)
    const previous = this.dataSessions.get(session.key)
    this.dataSessions.set(session.key, session)
    if (previous && previous !== session && !previous.closed) previous.conn.destroy()
    this.data.admitted(session.conn_key)
    this.data.undial(session.key)
    this.store.corestore.replicate(session.conn) // a refused peer never sees snapshot data
    this.store.follow(session.key)
    this.opts.log.debug({ peer: session.key }, 'data connection admitted')
  }

  /** Control plane: proof of the secret plus the identity's signature over this connection. */
  private admit(session: Session, hello: HelloBody): void {
    if (!this.proofValid(session, hello.proof)) {
      this.refuse(session, 'bad admission proof')
      return
    }
    const binds = verifyControlBinding(
      hello.identity,
      session.conn.handshakeHash!,
      session.conn.remotePublicKey,
      hello.binding,
    )
    if (!binds) {
      this.refuse(session, 'bad identity binding')
      return
    }
    session.key = Buffer.from(hello.identity).toString('hex')
    if (session.key === this.key) {
      this.refuse(session, 'claims our own identity')
      return
    }
    this.admitted(session)
    const previous = this.sessions.get(session.key)
    this.sessions.set(session.key, session)
    if (previous && previous !== session && !previous.closed) previous.conn.destroy()
    const now = performance.now()
    const detector = new PhiAccrual(this.opts.phi)
    detector.heartbeat(now)
    this.detectors.set(session.key, detector)
    const info: HelloInfo = { name: hello.name, priority: hello.priority, role: hello.role, term: hello.term }
    const wasReachable = this.table.get(session.key)?.reachable === true
    this.table.up(session.key, info, now)
    this.control.admitted(session.conn_key)
    this.store.follow(session.key)
    this.opts.log.info({ peer: session.key, name: info.name, priority: info.priority }, 'peer admitted')
    if (!wasReachable) this.emit('peer-up', session.key, info)
    this.store.replace()
  }

  /** Close a connection that never got admitted. */
  private refuse(session: Session, reason: string): void {
    if (session.closed || session.admitted) {
      if (session.admitted) this.drop(session, reason)
      return
    }
    this.opts.log.warn({ peer: session.conn_key, plane: session.plane, reason }, 'peer refused')
    this.emit('admission-refused', session.conn_key, reason)
    session.closed = true
    this.pending.delete(session)
    if (session.admission_timer) clearTimeout(session.admission_timer)
    session.conn.destroy()
  }

  /** Close a connection for a protocol violation. */
  private drop(session: Session, reason: string): void {
    if (!session.admitted) {
      this.refuse(session, reason)
      return
    }
    if (session.closed) return
    this.opts.log.warn({ peer: session.key, plane: session.plane, reason }, 'peer dropped')
    this.markClosed(session, 'rejected')
    session.conn.destroy()
  }

  private onClose(session: Session): void {
    if (session.admission_timer) clearTimeout(session.admission_timer)
    this.pending.delete(session)
    if (session.closed) return
    if (!session.admitted) {
      session.closed = true
      return
    }
    this.markClosed(session, 'closed')
  }

  private markClosed(session: Session, reason: PeerDownReason): void {
    session.closed = true
    const plane = session.plane === 'control' ? this.control : this.data
    const sessions = session.plane === 'control' ? this.sessions : this.dataSessions
    if (sessions.get(session.key) !== session) return // replaced by a newer connection
    sessions.delete(session.key)
    // Only a peer that went away is held; one dropped for a violation is alive and may come back.
    if (reason === 'closed') plane.closed(session.conn_key)
    if (session.plane === 'data') return // liveness is the control plane's business
    this.detectors.delete(session.key)
    this.peerDown(session.key, reason)
  }

  private peerDown(key: string, reason: PeerDownReason): void {
    if (!this.table.down(key, reason)) return
    this.opts.log.info({ peer: key, reason }, 'peer down')
    this.dropData(key)
    this.emit('peer-down', key, reason)
    if (!this.closing) this.store.replace()
  }

  /**
   * Close the data connection of a peer the control plane lost. A dead peer's data connection lingers
   * until its timeout (~5 s) and hypercore keeps asking it for blocks meanwhile; closed, its requests go
   * to the other holders at once. No dial hold on our side: if the peer is alive it reconnects.
   */
  private dropData(key: string): void {
    this.data.undial(key)
    const session = this.dataSessions.get(key)
    if (!session || session.closed) return
    session.closed = true
    this.dataSessions.delete(key)
    session.conn.destroy()
  }

  // ---- failure detection -------------------------------------------------------------------------

  private arrival(key: string, now_ms: number): void {
    this.detectors.get(key)?.heartbeat(now_ms)
    if (this.table.revive(key)) {
      const e = this.table.get(key)!
      this.opts.log.info({ peer: key }, 'peer heard again')
      this.emit('peer-up', key, { name: e.name, priority: e.priority, role: e.role, term: e.term })
      this.store.replace()
    }
  }

  private ping(): void {
    if (this.closing) return
    const frame = encodeFrame(FrameKind.Ping, this.local, this.opts.max_frame_bytes)
    for (const s of this.sessions.values()) if (s.admitted && !s.closed) this.sendFrame(s, frame)
  }

  private check(): void {
    const now = performance.now()
    const paused = now - this.last_check_ms > CHECK_INTERVAL_MS + LOCAL_PAUSE_MS
    this.last_check_ms = now
    this.mendDataPlane()
    if (paused) return // judge after one round of I/O: the queued heartbeats count first
    for (const [key, detector] of this.detectors) {
      if (this.table.get(key)?.reachable && detector.suspected(now)) {
        this.opts.log.warn({ peer: key, phi: detector.phi(now) }, 'peer suspected')
        this.peerDown(key, 'suspected')
      }
    }
  }

  /**
   * Every reachable peer needs a data connection too (snapshots, merge archives). Where it is missing,
   * the side with the greater key dials it until admitted; one dialler, so no simultaneous-dial race.
   */
  private mendDataPlane(): void {
    for (const key of this.sessions.keys()) {
      if (this.dataSessions.has(key) || !this.table.get(key)?.reachable) continue
      if (key < this.key) this.data.dial(key)
    }
  }

  private reportSuspicion(): void {
    const now = performance.now()
    for (const [key, detector] of this.detectors) this.emit('peer-suspicion', key, detector.phi(now))
  }
}
