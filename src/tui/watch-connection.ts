import { connect, type Socket } from 'node:net'
import type { NodeNotice } from '../runtime/node.ts'
import type { NodeStatus } from '../runtime/status.ts'

export interface WatchHandlers {
  connected(): void
  status(status: NodeStatus): void
  notice(notice: NodeNotice): void
  /** The connection failed or closed; called once per attempt. A retry follows after `retry_ms`. */
  lost(reason: string): void
}

export interface WatchOptions {
  /** How often the node sends a status (the node's floor is 100 ms). */
  interval_ms?: number
  retry_ms?: number
}

const MAX_LINE_BYTES = 1 << 20

/**
 * A `watch` stream on a node's control socket that outlives the node: when the node dies (the socket
 * closes or refuses), it says so and retries every `retry_ms` until `close()`. Unlike controlRequest
 * (one request, one answer), this connection is long-lived and closable from outside.
 */
export class WatchConnection {
  private socket: Socket | null = null
  private retry: NodeJS.Timeout | null = null
  private closed = false
  private readonly interval_ms: number
  private readonly retry_ms: number

  constructor(
    readonly socket_path: string,
    private readonly handlers: WatchHandlers,
    options: WatchOptions = {},
  ) {
    this.interval_ms = options.interval_ms ?? 250
    this.retry_ms = options.retry_ms ?? 500
  }

  start(): void {
    if (this.closed || this.socket !== null) return
    const socket = connect(this.socket_path)
    this.socket = socket
    let buffer = ''
    let reason = 'connection closed'
    socket.once('connect', () => {
      socket.write(`${JSON.stringify({ cmd: 'watch', interval_ms: this.interval_ms })}\n`)
      this.handlers.connected()
    })
    socket.on('data', (data) => {
      buffer += data.toString('utf8')
      for (let i = buffer.indexOf('\n'); i >= 0; i = buffer.indexOf('\n')) {
        const line = buffer.slice(0, i)
        buffer = buffer.slice(i + 1)
        if (line.length > 0) this.onLine(line)
      }
      if (buffer.length > MAX_LINE_BYTES) {
        reason = 'an answer line was too long'
        socket.destroy()
      }
    })
    socket.on('error', (error: NodeJS.ErrnoException) => {
      reason = error.code ?? error.message
    })
    socket.once('close', () => {
      this.socket = null
      if (this.closed) return
      this.handlers.lost(reason)
      this.retry = setTimeout(() => {
        this.retry = null
        this.start()
      }, this.retry_ms)
    })
  }

  private onLine(line: string): void {
    let message: { ok?: boolean; status?: NodeStatus; notice?: NodeNotice; error?: string }
    try {
      message = JSON.parse(line)
    } catch {
      return // a half-written line from a node killed mid-write; the next status replaces it
    }
    if (message.status) this.handlers.status(message.status)
    if (message.notice) this.handlers.notice(message.notice)
  }

  close(): void {
    this.closed = true
    if (this.retry) clearTimeout(this.retry)
    this.socket?.destroy()
    this.socket = null
  }
}
