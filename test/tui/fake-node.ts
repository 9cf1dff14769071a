import { createServer, type Server, type Socket } from 'node:net'
import type { NodeStatus } from '../../src/runtime/status.ts'

/** A stand-in for a node's control socket: answers `watch` with statuses, records every request. */
export class FakeNode {
  readonly requests: Array<Record<string, unknown>> = []
  readonly watchers = new Set<Socket>()
  private server: Server | null = null
  current: NodeStatus

  constructor(
    readonly path: string,
    initial: NodeStatus,
  ) {
    this.current = initial
  }

  async start(): Promise<void> {
    const server = createServer((socket) => {
      socket.on('error', () => {})
      socket.once('data', (data) => {
        const request = JSON.parse(data.toString().split('\n')[0]!) as Record<string, unknown>
        this.requests.push(request)
        if (request.cmd === 'watch') {
          this.watchers.add(socket)
          socket.once('close', () => this.watchers.delete(socket))
          socket.write(`${JSON.stringify({ ok: true, status: this.current })}\n`)
        } else socket.end(`${JSON.stringify({ ok: true })}\n`)
      })
    })
    this.server = server
    await new Promise<void>((resolve) => server.listen(this.path, resolve))
  }

  push(value: unknown): void {
    for (const socket of this.watchers) socket.write(`${JSON.stringify(value)}\n`)
  }

  /** Dies like a killed node: every connection closes, nothing listens. */
  async kill(): Promise<void> {
    const server = this.server
    if (server === null) return
    this.server = null
    for (const socket of this.watchers) socket.destroy()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  }
}
