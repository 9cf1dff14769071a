import assert from 'node:assert/strict'
import { performance } from 'node:perf_hooks'
import HyperDHT, { type HostPort, type KeyPair } from 'hyperdht'
import Hyperswarm, { type PeerDiscoverySession, type PeerInfo, type SecretStream } from 'hyperswarm'
import { DialHold } from './dial-hold.ts'
import type { OverlayLog } from './sessions.ts'

/**
 * Parallel outgoing dials. A killed peer's announcement stays in the DHT for minutes and every
 * rediscovery queues it again; a dial to it takes ~8 s to fail. With hyperswarm's default of 3, a few
 * dead peers kept every slot busy and a new node waited minutes to be dialled.
 */
const DIAL_PARALLEL = 16
const DIAL_HOLD_TICK_MS = 250
/** A released peer's probe window: one rediscovery interval plus this for the dial itself. */
const DIAL_PROBE_SLACK_MS = 5000

/** The part of udx-native's socket used here. */
interface UdxSocket {
  setRecvBufferSize(bytes: number): number
}

export interface PlaneOptions {
  /** 'control' or 'data', for logs. */
  name: string
  keyPair: KeyPair
  topic: Buffer
  /** DHT bootstrap nodes; undefined: the public DHT's. */
  bootstrap: HostPort[] | undefined
  host: string
  log: OverlayLog
  rediscover_interval_ms: number
  /**
   * UDP receive buffer of the sockets this plane's connections use (bytes; the kernel caps it at
   * net.core.rmem_max). Unset: the DHT's default.
   */
  recv_buffer_bytes?: number
  /** A new connection (never called while isolated or closing). */
  onConnection: (conn: SecretStream) => void
  /** Our own dials to a peer for which this is true are refused (it is reached another way). */
  refuseDial?: (key: string) => boolean
}

/**
 * One hyperswarm with its own DHT node (so its own UDP socket), key pair and topic. The federation runs
 * two: the control plane (admission, pings, control messages) and the data plane (admission, then
 * hypercore replication), so heartbeats never queue behind snapshot blocks in one encrypted stream
 * (holepunch.md section 4). Owns the dial hold of its peers and the isolation switch (a test nemesis).
 */
export class Plane {
  private swarm: Hyperswarm | null = null
  private discovery: PeerDiscoverySession | null = null
  private timers: NodeJS.Timeout[] = []
  private readonly dialHold: DialHold
  private readonly sized = new WeakSet<UdxSocket>()
  private isolated = false
  private closing = false

  constructor(private readonly opts: PlaneOptions) {
    this.dialHold = new DialHold({
      // Nothing to undo on release: the firewall asks the hold on every dial.
      release: () => {},
      probe_window_ms: opts.rediscover_interval_ms + DIAL_PROBE_SLACK_MS,
      now_ms: () => performance.now(),
    })
  }

  get publicKey(): Buffer {
    return this.opts.keyPair.publicKey
  }

  /** Join the topic and wait until the announce is flushed. */
  async start(): Promise<void> {
    assert(this.swarm === null, `${this.opts.name} plane already started`)
    const dht = new HyperDHT({
      bootstrap: this.opts.bootstrap,
      host: this.opts.host,
      firewalled: false,
      keyPair: this.opts.keyPair,
    })
    const swarm = new Hyperswarm({
      dht,
      keyPair: this.opts.keyPair,
      maxParallel: DIAL_PARALLEL,
      firewall: (remotePublicKey, payload) => this.firewalled(remotePublicKey, payload),
    })
    this.swarm = swarm
    // Hyperswarm bans every peer the firewall refused, and a banned peer is refused in both directions,
    // silently: its dial hangs ~8 s. Our firewall only ever refuses our own dials, so lift the ban.
    swarm.on('ban', (peerInfo: PeerInfo) => peerInfo.ban(false))
    swarm.on('connection', (conn: SecretStream) => {
      if (this.isolated || this.closing) {
        conn.on('error', () => {})
        conn.destroy()
        return
      }
      this.sizeBuffers(conn)
      this.opts.onConnection(conn)
    })
    this.discovery = swarm.join(this.opts.topic, { server: true, client: true })
    await this.discovery.flushed()
    await this.discovery.refresh() // peers that joined at the same moment (holepunch.md G2)
    this.timers.push(setInterval(() => this.dialHold.tick(), DIAL_HOLD_TICK_MS))
    this.timers.push(setInterval(() => this.rediscover(), this.opts.rediscover_interval_ms))
  }

  /**
   * Resolves once the swarm dialled every peer its lookups found (hyperswarm's flush), or after
   * `timeout_ms` (a dead peer's stale announcement takes ~8 s to fail). True when it flushed in time.
   */
  async flushed(timeout_ms: number): Promise<boolean> {
    const swarm = this.swarm
    assert(swarm !== null, `${this.opts.name} plane not started`)
    let timer: NodeJS.Timeout | undefined
    const expired = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), timeout_ms)
    })
    try {
      return await Promise.race([swarm.flush().then(() => true), expired])
    } finally {
      clearTimeout(timer)
    }
  }

  /**
   * A receiver busy verifying and storing a block drains its socket late; with the default buffer the
   * kernel dropped packets of bulk transfers (4 % retransmitted under load) and UDX's BBR backed off.
   */
  private sizeBuffers(conn: SecretStream): void {
    const bytes = this.opts.recv_buffer_bytes
    const socket = (conn.rawStream as { socket?: UdxSocket } | undefined)?.socket
    if (bytes === undefined || !socket || this.sized.has(socket)) return
    this.sized.add(socket)
    try {
      socket.setRecvBufferSize(bytes)
    } catch (error) {
      this.opts.log.debug({ err: error, plane: this.opts.name }, 'cannot size the receive buffer')
    }
  }

  /**
   * Refuses our own dials only (hyperswarm passes payload null for them): to held peers, to peers
   * `refuseDial` names, and to everyone while isolated. Incoming connections are never refused here: a refused dial is not answered, so the
   * dialler's connection (and its duplicate-connection slot for us) hangs ~8 s. While isolated, incoming
   * connections are accepted and closed at once instead, which the dialler sees immediately.
   */
  private firewalled(remotePublicKey: Buffer, payload: unknown): boolean {
    if (payload !== null) return false
    const key = remotePublicKey.toString('hex')
    return this.isolated || this.dialHold.isHeld(key) || this.opts.refuseDial?.(key) === true
  }

  private rediscover(): void {
    if (this.isolated || this.closing) return
    this.discovery
      ?.refresh()
      .catch((error) => this.opts.log.debug({ err: error, plane: this.opts.name }, 'rediscovery failed'))
  }

  /** The connection to `key` went away: do not dial it for a while. */
  closed(key: string): void {
    if (!this.isolated) this.dialHold.closed(key)
  }

  /** `key` proved membership on this plane. */
  admitted(key: string): void {
    this.dialHold.admitted(key)
  }

  /**
   * Keep dialling `key` until `undial` (a peer known alive through another plane): hyperswarm's explicit
   * peer, with any hold on it lifted. Discovery alone can leave a pair unconnected for seconds: when both
   * sides dial at once, each keeps the other's connection and closes its own, so both die.
   */
  dial(key: string): void {
    if (this.isolated || this.closing || !this.swarm) return
    this.dialHold.admitted(key)
    this.swarm.joinPeer(Buffer.from(key, 'hex'))
  }

  undial(key: string): void {
    this.swarm?.leavePeer(Buffer.from(key, 'hex'))
  }

  connections(): Iterable<SecretStream> {
    return this.swarm?.connections ?? []
  }

  /** Drop every connection, and dial nobody and close every new one until `rejoin`. */
  isolate(): void {
    this.isolated = true
    for (const conn of this.swarm?.connections ?? []) conn.destroy()
  }

  /** End an isolation: forget the holds it caused and look the peers up again at once. */
  rejoin(): void {
    if (!this.isolated) return
    this.isolated = false
    this.dialHold.clear()
    this.rediscover()
  }

  async close(): Promise<void> {
    this.closing = true
    for (const t of this.timers) clearInterval(t)
    this.timers = []
    if (this.swarm) await this.swarm.destroy()
  }
}
