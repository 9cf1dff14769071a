import dgram from 'node:dgram'
import { once } from 'node:events'
import net, { isIP } from 'node:net'
import type { Logger } from '../../../lib/log.ts'
import { answerQuery, type Zone } from './answer.ts'

export interface DnsServerOptions {
  host: string
  port: number
  /** The zone as of now (addresses change with the federation). */
  zone: () => Zone
  log: Logger
}

/** TCP clients at once; past it new ones are closed at once. */
const MAX_TCP_CONNECTIONS = 64
/** A TCP client that sends nothing for this long is closed (RFC 7766 suggests seconds). */
const TCP_IDLE_MS = 10_000
/** Unanswered TCP bytes buffered per connection: at most one maximal DNS message plus its length. */
const MAX_TCP_BUFFER_BYTES = 65_537

/**
 * DNS over UDP and TCP on one address and port, answering for the service's name only (answer.ts).
 * Malformed messages are dropped (UDP) or close the connection (TCP); nothing a client sends can
 * throw out of here, and TCP clients are bounded in number, idle time and buffered bytes.
 */
export class DnsServer {
  private udp: dgram.Socket | null = null
  private tcp: net.Server | null = null
  private readonly sockets = new Set<net.Socket>()
  readonly counters = { answered: 0, dropped: 0 }

  constructor(private readonly opts: DnsServerOptions) {}

  async start(): Promise<void> {
    const udp = dgram.createSocket(isIP(this.opts.host) === 6 ? 'udp6' : 'udp4')
    this.udp = udp
    udp.on('message', (message, rinfo) => {
      const reply = this.answer(message, 'udp')
      if (reply) udp.send(reply, rinfo.port, rinfo.address)
    })
    udp.on('error', (error) => this.opts.log.warn({ err: error.message }, 'dns udp error'))
    udp.bind(this.opts.port, this.opts.host)
    await once(udp, 'listening')
    const tcp = net.createServer((socket) => this.onTcp(socket))
    this.tcp = tcp
    tcp.maxConnections = MAX_TCP_CONNECTIONS
    tcp.listen(this.opts.port, this.opts.host)
    await once(tcp, 'listening')
  }

  private answer(message: Buffer, transport: 'udp' | 'tcp'): Buffer | null {
    let reply: Buffer | null = null
    try {
      reply = answerQuery(message, this.opts.zone(), transport)
    } catch (error) {
      this.opts.log.warn({ err: (error as Error).message }, 'dns answer failed')
    }
    if (reply) this.counters.answered++
    else this.counters.dropped++
    return reply
  }

  /** RFC 1035 4.2.2: each message is preceded by its two-byte length; several may follow one another. */
  private onTcp(socket: net.Socket): void {
    socket.on('error', () => {})
    this.sockets.add(socket)
    socket.once('close', () => this.sockets.delete(socket))
    socket.setTimeout(TCP_IDLE_MS, () => socket.destroy())
    let buffered = Buffer.alloc(0)
    socket.on('data', (bytes: Buffer) => {
      buffered = Buffer.concat([buffered, bytes])
      if (buffered.byteLength > MAX_TCP_BUFFER_BYTES + 2) {
        socket.destroy()
        return
      }
      while (buffered.byteLength >= 2) {
        const length = buffered.readUInt16BE(0)
        if (buffered.byteLength < 2 + length) break
        const message = buffered.subarray(2, 2 + length)
        buffered = buffered.subarray(2 + length)
        const reply = this.answer(message, 'tcp')
        if (!reply) {
          socket.destroy()
          return
        }
        const prefix = Buffer.alloc(2)
        prefix.writeUInt16BE(reply.byteLength, 0)
        socket.write(Buffer.concat([prefix, reply]))
      }
    })
  }

  async close(): Promise<void> {
    this.udp?.close()
    for (const socket of this.sockets) socket.destroy()
    const tcp = this.tcp
    if (tcp) await new Promise<void>((resolve) => tcp.close(() => resolve()))
  }
}
