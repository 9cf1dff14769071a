import { once } from 'node:events'
import net from 'node:net'
import { performance } from 'node:perf_hooks'
import type Protomux from 'protomux'
import type { Logger } from '../../lib/log.ts'
import { FlowChannel } from './flow-channel.ts'
import { encodeForwardId } from './forward-id.ts'
import { ForwardServer } from './forward-server.ts'
import { HoldQueue } from './hold-queue.ts'
import { LeastConnections, routeKey } from './least-connections.ts'
import { spliceLocal } from './local-splice.ts'
import type { OutputCommit } from './output-commit.ts'
import type { FrontDoorPort } from './ports.ts'
import type { Route } from './route.ts'
import { connectService } from './service-connection.ts'
import { Splice } from './splice.ts'

export interface FrontDoorOptions {
  ports: readonly FrontDoorPort[]
  /** Address every port listens on. */
  bind: string
  /** A connection waits at most this long for a server, then is closed. */
  hold_ms: number
  /** Connections waiting at once; past it, new ones are refused at once. */
  max_held: number
  /** Where a connection goes now (the runtime's view: serving here, the server it follows, or none). */
  route: () => Route
  /**
   * Type0 replicas (runtime/replica-runner.ts): every route that serves now, this node's own included;
   * a new connection goes to the one this front door has the fewest open connections to (least
   * connections). Absent: the one `route`.
   */
  spread?: () => NonNullable<Route>[]
  /** The admitted data connection to a member, or null while there is none. */
  mux: (key: string) => Protomux | null
  /**
   * This node's side lacks the data (refuse-to-split / Type3 minority, `front_door.minority: refuse`):
   * a connection with no server is refused at once (RST) instead of held, and those held are refused.
   * Absent: always hold.
   */
  refusing?: () => boolean
  /** Output commit while it is on (this node serves with it): the service's output is held until released. */
  output_commit?: () => OutputCommit | null
  log: Logger
}

export interface FrontDoorStats {
  accepted: number
  /** Refused at once: too many held. */
  refused: number
  /** Refused at once (or while held) because this side has no majority and refuses (`refusing`). */
  refused_minority: number
  held_now: number
  /** Longest wait of a connection that was then forwarded (or closed when its bound passed). */
  held_max_ms: number
  /** Closed because no server came within hold_ms. */
  expired: number
  forwarded_local: number
  forwarded_remote: number
  /** Forwarded connections closed because their server (or the stream to it) went away. */
  cut: number
  /** Forwarded connections whose stream died before any byte moved, held again for the next server. */
  rerouted: number
  /** Streams this node served for other front doors, and those it refused. */
  streams_accepted: number
  streams_refused: number
}

interface ClientConn {
  socket: net.Socket
  port: FrontDoorPort
  since_ms: number
  /** The stream being opened to the server (not yet accepted). */
  opening: FlowChannel | null
  forwarded: boolean
  /** Times this connection was held (a refused or rerouted stream holds it again). */
  holds: number
  /** Where it was sent (routeKey), counted in `spread` until it closes or is held again. */
  target: string | null
}

/** Held connections are retried this often (and at every change the runtime reports). */
const RETRY_INTERVAL_MS = 50

/**
 * Every node's way in for the service's clients (ARCHITECTURE.md, Front door). A connection is
 * accepted paused: nothing is read or sent until its server is known. The server joins it to its
 * service; any other node opens a forwarding stream to the server on the admitted data connection
 * (lane or hyperswarm). While no server is known it is held up to hold_ms. A stream the server refuses
 * reached no service, so it is held and tried again; one that was accepted and then dies closes the
 * client at once and is never replayed.
 */
export class FrontDoor {
  private readonly servers: net.Server[] = []
  private readonly held: HoldQueue<ClientConn>
  private readonly clients = new Set<ClientConn>()
  private readonly forward: ForwardServer
  private readonly least = new LeastConnections()
  private retry_timer: NodeJS.Timeout | null = null
  private closing = false
  private releasing = false
  /** The route last seen by update(), as logged (a failover's timeline shows when this node learnt it). */
  private last_route = ''
  readonly stats: FrontDoorStats = {
    accepted: 0,
    refused: 0,
    refused_minority: 0,
    held_now: 0,
    held_max_ms: 0,
    expired: 0,
    forwarded_local: 0,
    forwarded_remote: 0,
    cut: 0,
    rerouted: 0,
    streams_accepted: 0,
    streams_refused: 0,
  }

  constructor(private readonly opts: FrontDoorOptions) {
    this.held = new HoldQueue(opts.max_held, opts.hold_ms)
    this.forward = new ForwardServer({
      ports: opts.ports,
      serving: () => this.routes().some((r) => r.kind === 'local'),
      max_streams: opts.max_held * 4,
      log: opts.log,
      ...(opts.output_commit ? { output_commit: opts.output_commit } : {}),
      onStream: (event) => {
        if (event === 'accepted') this.stats.streams_accepted++
        else this.stats.streams_refused++
      },
    })
  }

  /** Listen on every port; rejects naming the port that cannot be bound. */
  async start(): Promise<void> {
    for (const port of this.opts.ports) {
      const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (socket) =>
        this.onConnection(port, socket),
      )
      this.servers.push(server)
      server.listen({ host: this.opts.bind, port: port.listen_port })
      const failed = once(server, 'error').then(([error]) => {
        throw new Error(
          `front door cannot listen on ${this.opts.bind}:${port.listen_port} (${port.name}): ${(error as Error).message}`,
        )
      })
      await Promise.race([once(server, 'listening'), failed])
    }
  }

  /** Serve forwarding streams on a member's newly admitted data connection. */
  attach(mux: Protomux): void {
    this.forward.attach(mux)
  }

  /** The route may have changed (a server appeared, a data connection came up): retry held connections. */
  update(): void {
    const route = this.routes().map(routeName).join(',') || 'none'
    if (route !== this.last_route) {
      this.last_route = route
      this.opts.log.info({ event: 'front_door_route', route, held: this.held.size }, 'front door route')
    }
    if (this.held.size > 0) this.release()
  }

  snapshot(): FrontDoorStats {
    return { ...this.stats, held_now: this.held.size }
  }

  /** Open connections per route (`local` or a member's key) as least connections counts them. */
  openByRoute(): Record<string, number> {
    return this.least.snapshot()
  }

  /** Every route a new connection may take now (one, or the serving replicas). */
  private routes(): NonNullable<Route>[] {
    if (this.opts.spread) return this.opts.spread()
    const route = this.opts.route()
    return route === null ? [] : [route]
  }

  private untarget(conn: ClientConn): void {
    if (conn.target === null) return
    this.least.closed(conn.target)
    conn.target = null
  }

  async close(): Promise<void> {
    this.closing = true
    if (this.retry_timer) clearInterval(this.retry_timer)
    this.retry_timer = null
    for (const c of this.clients) c.socket.destroy()
    await Promise.all(this.servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))))
  }

  private onConnection(port: FrontDoorPort, socket: net.Socket): void {
    if (this.closing) {
      socket.destroy()
      return
    }
    socket.on('error', () => {}) // 'close' follows; handled there
    socket.setNoDelay(true)
    this.stats.accepted++
    const conn: ClientConn = {
      socket,
      port,
      since_ms: performance.now(),
      opening: null,
      forwarded: false,
      holds: 0,
      target: null,
    }
    this.clients.add(conn)
    socket.once('close', () => {
      this.clients.delete(conn)
      this.held.remove(conn)
      this.untarget(conn)
      conn.opening?.close()
    })
    // First come, first served: while others wait, a new one waits behind them.
    if (this.held.size > 0) this.hold(conn)
    else this.dispatch(conn)
  }

  private hold(conn: ClientConn): void {
    this.untarget(conn)
    if (conn.socket.destroyed) return
    if (this.opts.refusing?.() === true) {
      this.refuseMinority(conn)
      return
    }
    conn.holds++
    if (!this.held.add(conn, performance.now(), conn.since_ms)) {
      this.stats.refused++
      this.opts.log.warn(
        { event: 'front_door_refused', port: conn.port.name, held: this.held.size },
        'too many held',
      )
      conn.socket.resetAndDestroy() // refused at once: an RST, as a port nobody listens on would give
      return
    }
    this.retry_timer ??= setInterval(() => this.release(), RETRY_INTERVAL_MS)
  }

  /** Retry every held connection in order; close those past their bound. */
  private release(): void {
    if (this.releasing) return
    this.releasing = true
    try {
      const now = performance.now()
      for (const conn of this.held.expire(now)) {
        this.stats.expired++
        this.noteHeld(now - conn.since_ms)
        this.opts.log.warn({ event: 'front_door_expired', port: conn.port.name }, 'no server within hold_ms')
        conn.socket.destroy()
      }
      if (this.routes().length > 0) for (const { item } of this.held.take(now)) this.dispatch(item)
      else if (this.opts.refusing?.() === true)
        for (const { item } of this.held.take(now)) this.refuseMinority(item)
    } finally {
      this.releasing = false
      if (this.held.size === 0 && this.retry_timer) {
        clearInterval(this.retry_timer)
        this.retry_timer = null
      }
    }
  }

  /** No server can come on this side until the split heals: the client is told at once (RST), not kept waiting. */
  private refuseMinority(conn: ClientConn): void {
    this.stats.refused_minority++
    this.opts.log.warn(
      { event: 'front_door_refused_minority', port: conn.port.name },
      'no majority on this side: refused',
    )
    conn.socket.resetAndDestroy()
  }

  private noteHeld(held_ms: number): void {
    this.stats.held_max_ms = Math.max(this.stats.held_max_ms, Math.round(held_ms))
  }

  private dispatch(conn: ClientConn): void {
    if (conn.socket.destroyed || this.closing) return
    // Routes to a member without an admitted data connection yet cannot carry the client now.
    const usable = this.routes().filter((r) => r.kind === 'local' || this.opts.mux(r.key) !== null)
    const route = this.least.pick(usable)
    if (route === null) {
      this.hold(conn) // no server known, or no data connection to it yet
      return
    }
    conn.target = routeKey(route)
    this.least.opened(conn.target)
    if (route.kind === 'local') this.serveLocally(conn)
    else this.openStream(conn, this.opts.mux(route.key)!)
  }

  private serveLocally(conn: ClientConn): void {
    const { socket, port } = conn
    const client = { host: socket.remoteAddress ?? '', port: socket.remotePort ?? 0 }
    const local = { host: socket.localAddress ?? '', port: socket.localPort ?? 0 }
    connectService(
      port.service_port,
      client,
      port.proxy_protocol,
      local,
      this.opts.output_commit?.() ?? null,
    ).then(
      (service) => {
        if (socket.destroyed) {
          service.socket.destroy()
          return
        }
        this.forwarded(conn, 'local')
        spliceLocal(socket, service, () => {})
      },
      () => this.hold(conn), // the service is not accepting (restarting): wait for it within the bound
    )
  }

  private openStream(conn: ClientConn, mux: Protomux): void {
    const { socket, port } = conn
    const id = encodeForwardId({
      p: port.name,
      h: socket.remoteAddress ?? '',
      r: socket.remotePort ?? 0,
      dh: socket.localAddress ?? '',
      dr: socket.localPort ?? 0,
    })
    const splice = new Splice((graceful) => {
      if (!graceful) this.stats.cut++
    })
    let flow: FlowChannel
    try {
      flow = FlowChannel.open(mux, id, {
        onOpen: () => {
          conn.opening = null
          this.forwarded(conn, 'remote')
          splice.attach(flow, { source: socket, sink: socket, destroy: () => socket.destroy() })
          socket.once('close', () => splice.localClosed())
        },
        onData: (b) => splice.onData(b),
        onEnd: () => splice.onEnd(),
        onCredit: () => splice.onCredit(),
        onClose: (opened) => {
          // A stream that dies before any byte went either way (its server died before its first
          // answer): no service saw anything of this client, so it may wait for the next server.
          if (opened && !splice.moved && !socket.destroyed) {
            splice.detach()
            conn.forwarded = false
            this.stats.rerouted++
            this.hold(conn)
            return
          }
          if (opened) {
            splice.onClose()
            return
          }
          conn.opening = null
          this.hold(conn) // refused before any service saw it: wait and try again within the bound
        },
      })
    } catch {
      this.hold(conn)
      return
    }
    conn.opening = flow
  }

  private forwarded(conn: ClientConn, where: 'local' | 'remote'): void {
    conn.forwarded = true
    const held_ms = performance.now() - conn.since_ms
    this.noteHeld(held_ms)
    if (where === 'local') this.stats.forwarded_local++
    else this.stats.forwarded_remote++
    // Only connections that waited: these are the failover's clients (one record each, not per connection).
    if (conn.holds > 0)
      this.opts.log.info(
        { event: 'front_door_held_forwarded', where, held_ms: Math.round(held_ms), holds: conn.holds },
        'held connection forwarded',
      )
  }
}

function routeName(route: NonNullable<Route>): string {
  return route.kind === 'local' ? 'local' : `remote:${route.key.slice(0, 8)}`
}
