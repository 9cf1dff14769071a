import { EventEmitter } from 'node:events'
import { performance } from 'node:perf_hooks'
import type { HostPort, KeyPair } from 'hyperdht'
import { STALL_TRACE, StallTrace } from '../lib/stall-trace.ts'
import { type Decoded, encodeFrame, FrameKind, type HelloBody, type PingBody } from './frames.ts'
import {
  controlKeyPair,
  deriveAdmissionKey,
  deriveControlTopic,
  signControlBinding,
  verifyControlBinding,
} from './keys.ts'
import { type PeerDownReason, PeerTable } from './peer-table.ts'
import { PhiAccrual, type PhiAccrualOptions } from './phi-accrual.ts'
import { Plane } from './plane.ts'
import { cutTransport, type OverlayLog, type Session, Sessions } from './sessions.ts'

export interface HelloInfo {
  name: string
  priority: number
  role: string
  term: number
  /** The peer's data lane (lane.ts): its advertised port at the address its control connection came from. */
  lane?: { host: string; port: number }
  /** The peer's front door address (src/frontdoor): its bind address, or where its connection came from. */
  front_door?: string
  /** Length of the peer's snapshot core after its last whole publish (frames.ts PingBody). */
  published?: number
}

/** What a peer's ping told; `published` absent: a peer that does not announce its publishes. */
export interface HeardState {
  role: string
  term: number
  published?: number | undefined
}

/** What this node tells in its hello and every ping. */
export interface LocalState {
  role: string
  term: number
  /** Length of this node's snapshot core after its last whole publish; 0: none. */
  published: number
}

/** What this node's hello tells about it beyond the options (known only once the node listens). */
export interface HelloAdvert {
  /** TCP port of this node's data lane; null: no lane. */
  lane_port: number | null
  /** This node's front door address ('': every address; null: no front door). */
  front_door_host?: string | null
}

/** Plain data (it crosses into the control worker). */
export interface ControlPlaneOptions {
  keyPair: KeyPair
  secret: Uint8Array
  /** DHT bootstrap nodes; undefined: the public DHT's. */
  bootstrap: HostPort[] | undefined
  host: string
  name: string
  priority: number
  heartbeat_interval_ms: number
  phi: PhiAccrualOptions
  admission_timeout_ms: number
  max_frame_bytes: number
  suspicion_report_interval_ms: number
  rediscover_interval_ms: number
}

export interface ControlStats {
  frames_sent: number
  frame_bytes_sent: number
  frames_received: number
  frame_bytes_received: number
  control_wire_bytes_written: number
  connections: number
}

type WellFormed = Exclude<Decoded, { ok: false }>

/** Bound on the start-up wait for the peers a lookup found (dialled and admitted). */
const JOIN_SETTLE_MS = 4000
const CHECK_INTERVAL_MS = 20
/** Bound on the wait for last words to be acknowledged when the plane closes. */
export const LAST_WORDS_FLUSH_MS = 200
/** See ControlPlane.ping. */
const PUBLISHED_PINGS = 10
/**
 * A gap between two checks longer than the interval plus this means this thread itself was paused (a
 * blocked event loop, CPU starvation, SIGSTOP). Timers run before I/O in Node's event loop, so right
 * after such a pause every peer looks silent while its heartbeats still wait in our sockets.
 */
const LOCAL_PAUSE_MS = 100

/**
 * The control plane: admission with the identity binding, 100 ms pings, control frames, and the
 * phi-accrual detector per peer. It runs in a worker thread of its own (control-worker.ts), so a busy
 * main thread (hypercore verification, storage, snapshot work) can neither delay our heartbeats nor make
 * us miss a peer's.
 *
 * Events (times are epoch ms, comparable across threads):
 *   'peer-up'     (key, hello: HelloInfo)       admitted, or heard again after suspicion
 *   'peer-down'   (key, reason: PeerDownReason)
 *   'heard'       (key, state: HeardState)     a ping whose role, term or published length differs
 *   'message'     (key, body)                  a control frame (envelope checked, not yet validated)
 *   'suspicion'   (key, phi, last_heard_epoch_ms)  periodic
 *   'admission-refused' (conn_key, reason)
 */
export class ControlPlane extends EventEmitter {
  readonly key: string
  private readonly plane: Plane
  private readonly sessions: Sessions
  private readonly table = new PeerTable()
  private readonly detectors = new Map<string, PhiAccrual>()
  private local: LocalState = { role: 'candidate', term: 0, published: 0 }
  /** Each peer's last announced published length (none: a peer that does not announce). */
  private readonly published = new Map<string, number | undefined>()
  private advert: HelloAdvert = { lane_port: null }
  /** The published length our pings announce, pings left that still carry it, pings since. */
  private pinged = { published: 0, left: 0, count: 0 }
  private timers: NodeJS.Timeout[] = []
  private last_check_ms = performance.now()
  private closing = false
  private started = false
  /** Gaps between our pings (SUSTAIN_STALL_TRACE only, lib/stall-trace.ts). */
  private ping_trace: StallTrace | null = null

  constructor(
    private readonly opts: ControlPlaneOptions,
    private readonly log: OverlayLog,
  ) {
    super()
    this.key = Buffer.from(opts.keyPair.publicKey).toString('hex')
    const keyPair = controlKeyPair(opts.keyPair)
    this.sessions = new Sessions({
      plane: 'control',
      admissionKey: deriveAdmissionKey(opts.secret),
      admission_timeout_ms: opts.admission_timeout_ms,
      max_frame_bytes: opts.max_frame_bytes,
      log,
      admissionFrame: (session, proof, handshakeHash) => this.hello(session, proof, handshakeHash),
      onFrame: (session, decoded) => this.onFrame(session, decoded),
      onClosed: (session, reason) => {
        // Only a peer that went away is held; one dropped for a violation is alive and may come back.
        if (reason === 'closed') this.plane.closed(session.conn_key)
        this.detectors.delete(session.key)
        this.peerDown(session.key, reason)
      },
      onRefused: (conn_key, reason) => this.emit('admission-refused', conn_key, reason),
    })
    this.plane = new Plane({
      name: 'control',
      keyPair,
      topic: deriveControlTopic(opts.secret),
      bootstrap: opts.bootstrap,
      host: opts.host,
      log,
      rediscover_interval_ms: opts.rediscover_interval_ms,
      onConnection: (conn) => this.sessions.accept(conn),
    })
  }

  async start(advert: HelloAdvert): Promise<void> {
    this.advert = { ...advert }
    await this.plane.start()
    if (STALL_TRACE) this.ping_trace = new StallTrace('control-ping', (r) => this.log.warn(r, 'stall'))
    this.timers.push(setInterval(() => this.ping(), this.opts.heartbeat_interval_ms))
    this.started = true
    this.timers.push(setInterval(() => this.check(), CHECK_INTERVAL_MS))
    this.timers.push(setInterval(() => this.reportSuspicion(), this.opts.suspicion_report_interval_ms))
    await this.settle()
  }

  /**
   * Start-up waits (at most JOIN_SETTLE_MS) until every peer the topic's lookup found was dialled and
   * every connection made was admitted or refused: the node's first election counts its join wait from
   * here, so nodes started together hear each other (and each other's priority) before anyone elects.
   */
  private async settle(): Promise<void> {
    const deadline = performance.now() + JOIN_SETTLE_MS
    await this.plane.flushed(JOIN_SETTLE_MS)
    for (let i = 0; i < JOIN_SETTLE_MS / 25 && this.sessions.pendingCount > 0; i++) {
      if (performance.now() >= deadline) break
      await new Promise((resolve) => setTimeout(resolve, 25))
    }
  }

  async close(): Promise<void> {
    if (this.closing) return
    // Last words (a resign, a leaving) reach the peers before the connections go: bounded, never hangs.
    await this.flush(LAST_WORDS_FLUSH_MS)
    this.closing = true
    for (const t of this.timers) clearInterval(t)
    this.timers = []
    this.sessions.close()
    await this.plane.close()
  }

  setLocalState(state: LocalState): void {
    this.local = { role: state.role, term: state.term, published: state.published }
    // A new publish is pinged at once, not at the next tick: readers start fetching it now. With output
    // commit a client's answer waits for a candidate to store the snapshot, and the tick's wait (half an
    // interval on average, more when the timer runs late on a loaded machine) was on that path.
    if (this.started && state.published !== this.pinged.published) this.ping()
  }

  /** Send an encoded frame to one admitted peer. */
  send(key: string, frame: Buffer): boolean {
    const session = this.sessions.admitted.get(key)
    return session !== undefined && this.sessions.send(session, frame)
  }

  broadcast(frame: Buffer): number {
    let sent = 0
    for (const s of this.sessions.admitted.values()) if (this.sessions.send(s, frame)) sent++
    return sent
  }

  /**
   * Resolves true once every frame written so far was acknowledged by its peer (UDX acks), false after
   * `timeout_ms` (a dead or frozen peer never acks).
   */
  async flush(timeout_ms: number): Promise<boolean> {
    const conns = [...this.sessions.admitted.values()].map((s) => s.conn)
    if (conns.length === 0) return true
    let timer: NodeJS.Timeout | undefined
    const expired = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), timeout_ms)
    })
    const acked = Promise.all(conns.map((c) => c.flush().catch(() => false))).then((all) =>
      all.every((ok) => ok === true),
    )
    try {
      return await Promise.race([acked, expired])
    } finally {
      clearTimeout(timer)
    }
  }

  /** Evidence from the data side that `key`'s process is gone: down until a frame from it arrives. */
  gone(key: string): void {
    if (this.sessions.admitted.has(key)) this.peerDown(key, 'gone')
  }

  /** Drop a peer's connection for a violation found by the caller (an invalid control message). */
  drop(key: string, reason: string): void {
    const session = this.sessions.admitted.get(key)
    if (session) this.sessions.drop(session, reason)
  }

  isolate(): void {
    this.plane.isolate()
  }

  rejoin(): void {
    this.plane.rejoin()
  }

  /** Test aid: tear the transport out from under every connection (no goodbye at the protocol level). */
  cut(): void {
    for (const conn of this.plane.connections()) cutTransport(conn)
  }

  stats(): ControlStats {
    let control_wire_bytes_written = 0
    for (const conn of this.plane.connections()) {
      control_wire_bytes_written += (conn as { rawBytesWritten?: number }).rawBytesWritten ?? 0
    }
    return { ...this.sessions.counters, control_wire_bytes_written, connections: this.sessions.admitted.size }
  }

  private hello(session: Session, proof: Buffer, handshakeHash: Buffer): Buffer {
    const body: HelloBody = {
      proof,
      identity: this.opts.keyPair.publicKey,
      binding: signControlBinding(this.opts.keyPair, handshakeHash, session.conn.publicKey),
      name: this.opts.name,
      priority: this.opts.priority,
      ...this.local,
      ...(this.advert.lane_port !== null ? { lane_port: this.advert.lane_port } : {}),
      ...(typeof this.advert.front_door_host === 'string' ? { front_door: this.advert.front_door_host } : {}),
    }
    return encodeFrame(FrameKind.Hello, body, this.opts.max_frame_bytes)
  }

  private onFrame(session: Session, decoded: WellFormed): void {
    if (!session.admitted) {
      if (decoded.kind !== FrameKind.Hello) this.sessions.refuse(session, 'first frame is not a hello')
      else this.admit(session, decoded.body)
      return
    }
    const now = performance.now()
    this.arrival(session.key, now)
    switch (decoded.kind) {
      case FrameKind.Hello:
        this.sessions.drop(session, 'second hello')
        return
      case FrameKind.Admit:
        this.sessions.drop(session, 'admit frame on the control plane')
        return
      case FrameKind.Ping: {
        const entry = this.table.get(session.key)
        const { role, term } = decoded.body
        const published = decoded.body.published ?? this.published.get(session.key)
        const changed =
          entry !== undefined &&
          (entry.role !== role || entry.term !== term || this.published.get(session.key) !== published)
        this.table.heard(session.key, now, decoded.body)
        this.published.set(session.key, published)
        if (changed) this.emit('heard', session.key, { role, term, published } satisfies HeardState)
        return
      }
      case FrameKind.Control:
        this.table.heard(session.key, now)
        this.emit('message', session.key, decoded.body)
    }
  }

  /** Proof of the secret plus the identity's signature over this connection. */
  private admit(session: Session, hello: HelloBody): void {
    if (!this.sessions.proofValid(session, hello.proof)) {
      this.sessions.refuse(session, 'bad admission proof')
      return
    }
    const binds = verifyControlBinding(
      hello.identity,
      session.conn.handshakeHash!,
      session.conn.remotePublicKey,
      hello.binding,
    )
    if (!binds) {
      this.sessions.refuse(session, 'bad identity binding')
      return
    }
    const key = Buffer.from(hello.identity).toString('hex')
    if (key === this.key) {
      this.sessions.refuse(session, 'claims our own identity')
      return
    }
    this.sessions.admit(session, key)
    const now = performance.now()
    const detector = new PhiAccrual(this.opts.phi)
    detector.heartbeat(now)
    this.detectors.set(key, detector)
    const info: HelloInfo = { name: hello.name, priority: hello.priority, role: hello.role, term: hello.term }
    if (hello.published !== undefined) info.published = hello.published
    this.published.set(key, hello.published)
    const host = session.conn.rawStream?.remoteHost
    if (hello.lane_port !== undefined && host) info.lane = { host, port: hello.lane_port }
    const front_door = hello.front_door === '' ? host : hello.front_door
    if (front_door) info.front_door = front_door
    this.table.up(key, info, now)
    this.plane.admitted(session.conn_key)
    this.log.info({ peer: key, name: info.name, priority: info.priority }, 'peer admitted')
    this.emit('peer-up', key, info)
  }

  private peerDown(key: string, reason: PeerDownReason): void {
    if (!this.table.down(key, reason)) return
    this.emit('peer-down', key, reason)
  }

  private arrival(key: string, now_ms: number): void {
    this.detectors.get(key)?.heartbeat(now_ms)
    if (this.table.revive(key)) {
      const e = this.table.get(key)!
      this.log.info({ peer: key }, 'peer heard again')
      this.emit('peer-up', key, { name: e.name, priority: e.priority, role: e.role, term: e.term })
    }
  }

  /**
   * Pings carry `published` for the first PUBLISHED_PINGS after it changed and in every
   * PUBLISHED_PINGS-th one (a peer admitted meanwhile has it from our hello): in every ping it was a
   * quarter of the control plane's bytes.
   */
  private ping(): void {
    if (this.closing) return
    this.ping_trace?.tick()
    const { role, term, published } = this.local
    if (published !== this.pinged.published) this.pinged = { published, left: PUBLISHED_PINGS, count: 0 }
    this.pinged.left--
    const tell = this.pinged.left >= 0 || ++this.pinged.count % PUBLISHED_PINGS === 0
    const body: PingBody = tell ? { role, term, published } : { role, term }
    this.broadcast(encodeFrame(FrameKind.Ping, body, this.opts.max_frame_bytes))
  }

  private check(): void {
    const now = performance.now()
    const paused = now - this.last_check_ms > CHECK_INTERVAL_MS + LOCAL_PAUSE_MS
    this.last_check_ms = now
    if (paused) return // judge after one round of I/O: the queued heartbeats count first
    for (const [key, detector] of this.detectors) {
      if (this.table.get(key)?.reachable && detector.suspected(now)) {
        const silent_ms = Math.round(now - (this.table.get(key)?.last_heard_ms ?? now))
        this.log.warn({ peer: key, phi: detector.phi(now), silent_ms }, 'peer suspected')
        this.peerDown(key, 'suspected')
      }
    }
  }

  private reportSuspicion(): void {
    const now = performance.now()
    for (const [key, detector] of this.detectors) {
      const heard = this.table.get(key)?.last_heard_ms ?? now
      this.emit('suspicion', key, detector.phi(now), performance.timeOrigin + heard)
    }
  }
}
