import { EventEmitter } from 'node:events'
import { connect, type Socket } from 'node:net'

/** An asynchronous QMP event (`SHUTDOWN`, `GUEST_PANICKED`, ...). */
export interface QmpEvent {
  event: string
  data?: Record<string, unknown>
  timestamp?: { seconds: number; microseconds: number }
}

export class QmpError extends Error {
  constructor(
    readonly command: string,
    readonly qmp_class: string,
    message: string,
  ) {
    super(`QMP ${command}: ${qmp_class}: ${message}`)
    this.name = 'QmpError'
  }
}

interface Pending {
  command: string
  resolve: (value: unknown) => void
  reject: (error: Error) => void
  timer: NodeJS.Timeout
}

const DEFAULT_COMMAND_TIMEOUT_MS = 10_000
const MAX_LINE_BYTES = 16 * 1024 * 1024

/**
 * A QMP client over a Unix socket: JSON lines, commands matched to replies by id, events emitted as
 * `event` the moment they arrive (the driver turns them into DriverEvents without polling).
 */
export class QmpClient extends EventEmitter {
  private readonly pending = new Map<number, Pending>()
  private next_id = 1
  private buffer = ''
  private closed = false

  private constructor(private readonly socket: Socket) {
    super()
    socket.setEncoding('utf8')
    socket.on('data', (text: string) => this.receive(text))
    socket.on('error', () => {}) // 'close' follows and fails what is pending
    socket.on('close', () => this.fail(new Error('QMP connection closed')))
  }

  /**
   * Connects once the socket exists (QEMU creates it during start-up), reads the greeting and enters
   * command mode. Gives up after `timeout_ms` or as soon as `gone()` says QEMU exited.
   */
  static async connect(path: string, timeout_ms: number, gone: () => boolean): Promise<QmpClient> {
    const deadline = performance.now() + timeout_ms
    for (let attempt = 0; ; attempt++) {
      if (gone()) throw new Error('QEMU exited before its QMP socket answered')
      const socket = await new Promise<Socket | null>((resolve) => {
        const s = connect(path)
        s.once('connect', () => resolve(s))
        s.once('error', () => {
          s.destroy()
          resolve(null)
        })
      })
      if (socket) {
        const client = new QmpClient(socket)
        await client.greeting(Math.max(1000, deadline - performance.now()))
        await client.execute('qmp_capabilities')
        return client
      }
      if (performance.now() > deadline) throw new Error(`no QMP socket at ${path} after ${timeout_ms} ms`)
      await new Promise((ok) => setTimeout(ok, Math.min(20 * (attempt + 1), 100)))
    }
  }

  private greeted: ((ok: boolean) => void) | null = null

  private greeting(timeout_ms: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no QMP greeting')), timeout_ms)
      this.greeted = (ok) => {
        clearTimeout(timer)
        this.greeted = null
        ok ? resolve() : reject(new Error('QMP connection closed before its greeting'))
      }
    })
  }

  private receive(text: string): void {
    this.buffer += text
    if (this.buffer.length > MAX_LINE_BYTES) {
      this.socket.destroy()
      return
    }
    for (let nl = this.buffer.indexOf('\n'); nl >= 0; nl = this.buffer.indexOf('\n')) {
      const line = this.buffer.slice(0, nl).trim()
      this.buffer = this.buffer.slice(nl + 1)
      if (line) this.handle(line)
    }
  }

  private handle(line: string): void {
    let message: Record<string, unknown>
    try {
      message = JSON.parse(line) as Record<string, unknown>
    } catch {
      return // QEMU writes JSON only; ignore anything else rather than die on it
    }
    if ('QMP' in message) {
      this.greeted?.(true)
      return
    }
    if (typeof message['event'] === 'string') return void this.emit('event', message as unknown as QmpEvent)
    const id = message['id']
    if (typeof id !== 'number') return
    const pending = this.pending.get(id)
    if (!pending) return
    this.pending.delete(id)
    clearTimeout(pending.timer)
    if ('error' in message) {
      const error = message['error'] as { class?: string; desc?: string }
      pending.reject(new QmpError(pending.command, error.class ?? 'Error', error.desc ?? 'failed'))
    } else pending.resolve(message['return'])
  }

  private fail(error: Error): void {
    if (this.closed) return
    this.closed = true
    this.greeted?.(false)
    for (const pending of this.pending.values()) {
      clearTimeout(pending.timer)
      pending.reject(error)
    }
    this.pending.clear()
    this.emit('close')
  }

  execute<T = unknown>(
    command: string,
    args?: Record<string, unknown>,
    timeout_ms = DEFAULT_COMMAND_TIMEOUT_MS,
  ): Promise<T> {
    if (this.closed) return Promise.reject(new Error(`QMP ${command}: connection closed`))
    const id = this.next_id++
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id)
        reject(new Error(`QMP ${command}: no answer in ${timeout_ms} ms`))
      }, timeout_ms)
      this.pending.set(id, { command, resolve: resolve as (v: unknown) => void, reject, timer })
      this.socket.write(`${JSON.stringify({ execute: command, ...(args ? { arguments: args } : {}), id })}\n`)
    })
  }

  close(): void {
    this.socket.destroy()
    this.fail(new Error('QMP connection closed'))
  }
}
