import type Protomux from 'protomux'
import type { Logger } from '../../lib/log.ts'
import { FlowChannel, FORWARD_PROTOCOL } from './flow-channel.ts'
import { decodeForwardId } from './forward-id.ts'
import type { OutputCommit } from './output-commit.ts'
import type { FrontDoorPort } from './ports.ts'
import { connectService, whenDrained } from './service-connection.ts'
import { Splice } from './splice.ts'

export interface ForwardServerOptions {
  ports: readonly FrontDoorPort[]
  /** Whether this node serves now (its service answers). */
  serving: () => boolean
  /** Forwarded streams served at once; past it, new ones are refused (the origin retries or closes). */
  max_streams: number
  log: Logger
  /** Output commit, while it is on: what the service sends waits in its gate until released. */
  output_commit?: () => OutputCommit | null
  onStream?: (event: 'accepted' | 'refused', reason?: string) => void
}

/**
 * The server's end of forwarded connections: a stream another member opens on its admitted data
 * connection becomes a connection to the local service. The channel is opened back only once the
 * service accepted, so a refused stream (not serving, service down, malformed id, too many) never
 * reached any service and its origin may try again elsewhere.
 */
export class ForwardServer {
  private active = 0
  private readonly ports: Map<string, FrontDoorPort>

  constructor(private readonly opts: ForwardServerOptions) {
    this.ports = new Map(opts.ports.map((p) => [p.name, p]))
  }

  /** Serve streams on this admitted data connection (call once per connection; again is harmless). */
  attach(mux: Protomux): void {
    mux.pair({ protocol: FORWARD_PROTOCOL }, (id) => this.accept(mux, id))
  }

  private refuse(reason: string): void {
    this.opts.log.debug({ reason }, 'forwarded stream refused')
    this.opts.onStream?.('refused', reason)
  }

  /** Returning without creating the channel makes protomux reject it. */
  private async accept(mux: Protomux, raw: Buffer | null): Promise<void> {
    const id = decodeForwardId(raw)
    const port = id ? this.ports.get(id.p) : undefined
    if (!id || !port) return this.refuse('malformed stream id')
    if (!this.opts.serving()) return this.refuse('not serving')
    if (this.active >= this.opts.max_streams) return this.refuse('too many streams')
    this.active++
    let released = false
    const release = () => {
      if (!released) this.active--
      released = true
    }
    let service: Awaited<ReturnType<typeof connectService>>
    try {
      service = await connectService(
        port.service_port,
        { host: id.h, port: id.r },
        port.proxy_protocol,
        { host: id.dh, port: id.dr },
        this.opts.output_commit?.() ?? null,
      )
    } catch (error) {
      release()
      return this.refuse(`service connect failed: ${(error as Error).message}`)
    }
    const splice = new Splice(release)
    let flow: FlowChannel
    try {
      flow = FlowChannel.accept(mux, raw!, splice)
    } catch {
      service.socket.destroy()
      release()
      return this.refuse('connection closed')
    }
    splice.attach(flow, {
      source: service.output,
      sink: service.socket,
      destroy: () => service.socket.destroy(),
    })
    whenDrained(service, () => splice.localClosed())
    this.opts.onStream?.('accepted')
  }

  get streams(): number {
    return this.active
  }
}
