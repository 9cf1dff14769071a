import assert from 'node:assert/strict'
import { once } from 'node:events'
import net from 'node:net'
import SecretStream from '@hyperswarm/secret-stream'
import type { KeyPair } from 'hyperdht'
import type { SecretStream as Conn } from 'hyperswarm'
import type { OverlayLog } from './sessions.ts'

/**
 * The data lane: a direct TCP connection between two members, encrypted and authenticated like a
 * hyperswarm connection (a Noise secret stream keyed by the node identity), carrying the same admission
 * and hypercore replication as the data plane. UDX over loopback moved ~1,450-byte packets (724 per MiB,
 * two system calls each way), which left a candidate's thread CPU-bound at ~90 MB/s; TCP moves the same
 * bytes in 64 KiB segments (bench/RESULTS.md). Where TCP does not get through (NAT without a forwarded
 * port), the hyperswarm data plane with its hole punching carries the data instead.
 */

export interface LaneOptions {
  keyPair: KeyPair
  /** Address the lane listens on. */
  host: string
  /** TCP port to listen on; 0: any free port. */
  port: number
  /** A dial, or an incoming connection's handshake, that takes longer fails. */
  connect_timeout_ms: number
  log: OverlayLog
  /** A connection whose Noise handshake completed (never called while isolated or closing). */
  onConnection: (conn: Conn) => void
}

/**
 * How a dial ended. `refused`: the far host answered the SYN with a reset (ECONNREFUSED), so nothing
 * listens at that address now; `reset`: a connection was made but ended before the handshake finished
 * (e.g. a listener closing under it); `failed`: timed out, another key answered, or another error.
 */
export type LaneDialOutcome = 'up' | 'refused' | 'reset' | 'failed'

export class Lane {
  private server: net.Server | null = null
  private readonly conns = new Set<Conn>()
  /** Every connection this lane ever carried (a closed one is no longer in `conns`). */
  private readonly carried_ = new WeakSet<Conn>()
  private isolated = false
  private closing = false

  constructor(private readonly opts: LaneOptions) {
    assert(Number.isInteger(opts.port) && opts.port >= 0 && opts.port < 65536, 'lane port must be 0-65535')
  }

  /** Listen; resolves to the bound port. */
  async start(): Promise<number> {
    assert(this.server === null, 'lane already started')
    const server = net.createServer((socket) => this.incoming(socket))
    this.server = server
    server.listen({ host: this.opts.host, port: this.opts.port })
    await Promise.race([
      once(server, 'listening'),
      once(server, 'error').then(([error]) => {
        throw new Error(`data lane cannot listen on ${this.opts.host}:${this.opts.port}: ${error.message}`)
      }),
    ])
    return (server.address() as net.AddressInfo).port
  }

  /** Whether `conn` travels on this lane (rather than on the hyperswarm data plane). */
  carries(conn: Conn): boolean {
    return this.conns.has(conn)
  }

  /** Whether `conn` travels or travelled on this lane (true after it closed too). */
  carried(conn: Conn): boolean {
    return this.carried_.has(conn)
  }

  /**
   * Dial `key` at host:port. Resolves 'up' once the connection is handed to onConnection; otherwise how
   * it failed (refused, reset, or timed out / another key), which the caller answers with the
   * hyperswarm data plane.
   */
  async dial(key: string, host: string, port: number): Promise<LaneDialOutcome> {
    if (this.isolated || this.closing) return 'failed'
    const expected = Buffer.from(key, 'hex')
    const socket = net.connect({ host, port })
    let code: string | undefined
    let connected = false
    socket.once('connect', () => {
      connected = true
    })
    socket.once('error', (error: NodeJS.ErrnoException) => {
      code ??= error.code
    })
    const conn = this.wrap(true, socket, expected)
    const handshake = await this.handshake(conn)
    if (handshake !== 'ok') {
      if (code === 'ECONNREFUSED') return 'refused'
      // Made, then ended before the handshake: not proof of life (a dying listener), not of death. A
      // handshake that timed out (a frozen process's kernel still accepts) proves nothing either.
      if (connected && handshake === 'error') return 'reset'
      return 'failed'
    }
    if (!conn.remotePublicKey.equals(expected)) {
      this.opts.log.warn(
        { peer: key, answered: conn.remotePublicKey.toString('hex'), host, port },
        'data lane answered by another key',
      )
      conn.destroy()
      return 'failed'
    }
    if (this.isolated || this.closing) {
      conn.destroy()
      return 'failed'
    }
    this.opts.onConnection(conn)
    return 'up'
  }

  private incoming(socket: net.Socket): void {
    if (this.isolated || this.closing) {
      socket.destroy()
      return
    }
    const conn = this.wrap(false, socket, null)
    void this.opened(conn).then((ok) => {
      if (!ok) return
      if (this.isolated || this.closing) conn.destroy()
      else this.opts.onConnection(conn)
    })
  }

  private wrap(initiator: boolean, socket: net.Socket, remotePublicKey: Buffer | null): Conn {
    socket.setNoDelay(true)
    const conn = new SecretStream(initiator, socket, {
      keyPair: this.opts.keyPair,
      ...(remotePublicKey ? { remotePublicKey } : {}),
    })
    conn.on('error', (error: Error) => this.opts.log.debug({ err: error.message }, 'data lane error'))
    this.conns.add(conn)
    this.carried_.add(conn)
    conn.once('close', () => this.conns.delete(conn))
    return conn
  }

  /** The Noise handshake completes within connect_timeout_ms, or the connection is destroyed. */
  private async opened(conn: Conn): Promise<boolean> {
    return (await this.handshake(conn)) === 'ok'
  }

  private async handshake(conn: Conn): Promise<'ok' | 'timeout' | 'error'> {
    let timed_out = false
    const timer = setTimeout(() => {
      timed_out = true
      conn.destroy()
    }, this.opts.connect_timeout_ms)
    try {
      if ((await conn.opened) === true) return 'ok'
    } catch {
      // below
    } finally {
      clearTimeout(timer)
    }
    return timed_out ? 'timeout' : 'error'
  }

  connections(): Iterable<Conn> {
    return this.conns
  }

  /** Drop every connection; refuse and dial nothing until `rejoin`. */
  isolate(): void {
    this.isolated = true
    for (const conn of this.conns) conn.destroy()
  }

  rejoin(): void {
    this.isolated = false
  }

  async close(): Promise<void> {
    this.closing = true
    for (const conn of this.conns) conn.destroy()
    const server = this.server
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()))
  }
}
