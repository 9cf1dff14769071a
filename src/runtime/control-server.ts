import { chmod, unlink } from 'node:fs/promises'
import { connect, createServer, type Server, type Socket } from 'node:net'
import type { Logger } from '../../lib/log.ts'
import type { NodeNotice, SustainNode } from './node.ts'

/**
 * The node's control socket: a Unix socket (mode 0600) in its data directory, one JSON object per
 * line each way. Requests: `status`, `snapshot`, `leave` (streams the hand-over's timeline until the
 * node exits), `watch` (streams notices and a status every `interval_ms`).
 */
export type ControlRequest =
  | { cmd: 'status' }
  | { cmd: 'snapshot' }
  | { cmd: 'leave' }
  | { cmd: 'watch'; interval_ms?: number }
  /** Testing aid: partition this node from every peer for `ms` milliseconds. */
  | { cmd: 'isolate'; ms: number }

const MAX_REQUEST_BYTES = 4096

/** Fails when another live node already answers on this socket: one node per data directory. */
export async function claimSocket(path: string): Promise<void> {
  const alive = await new Promise<boolean>((resolve) => {
    const probe = connect(path)
    probe.once('connect', () => {
      probe.destroy()
      resolve(true)
    })
    probe.once('error', () => resolve(false))
  })
  if (alive) throw new Error(`another node is running on this data directory (it answers on ${path})`)
  await unlink(path).catch(() => {}) // a stale socket left by a killed node
}

export async function startControlServer(node: SustainNode, path: string, log: Logger): Promise<Server> {
  await claimSocket(path)
  const server = createServer((socket) => serve(node, socket, log))
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(path, () => resolve())
  })
  await chmod(path, 0o600)
  return server
}

function send(socket: Socket, value: unknown): void {
  if (!socket.destroyed) socket.write(`${JSON.stringify(value)}\n`)
}

function serve(node: SustainNode, socket: Socket, log: Logger): void {
  let buffer = ''
  socket.on('error', () => {})
  socket.on('data', (data) => {
    buffer += data.toString('utf8')
    if (buffer.length > MAX_REQUEST_BYTES) {
      send(socket, { ok: false, error: 'request too large' })
      socket.destroy()
      return
    }
    const newline = buffer.indexOf('\n')
    if (newline < 0) return
    const line = buffer.slice(0, newline)
    buffer = ''
    socket.pause()
    let request: ControlRequest
    try {
      request = JSON.parse(line) as ControlRequest
    } catch {
      send(socket, { ok: false, error: 'not JSON' })
      socket.end()
      return
    }
    handle(node, socket, request, log)
  })
}

function handle(node: SustainNode, socket: Socket, request: ControlRequest, log: Logger): void {
  switch (request?.cmd) {
    case 'status':
      send(socket, { ok: true, status: node.status() })
      socket.end()
      return
    case 'isolate':
      if (!(Number.isInteger(request.ms) && request.ms > 0 && request.ms <= 3_600_000)) {
        send(socket, { ok: false, error: 'isolate needs ms, an integer from 1 to 3600000' })
      } else {
        void node.isolate(request.ms).catch((error) => log.warn({ err: error }, 'isolate failed'))
        send(socket, { ok: true })
      }
      socket.end()
      return
    case 'snapshot':
      node.snapshotNow()
      send(socket, { ok: true })
      socket.end()
      return
    case 'leave':
    case 'watch': {
      const stop = node.watch((notice: NodeNotice) => {
        send(socket, { ok: true, notice })
        if (notice.kind === 'exit') socket.end()
      })
      const interval_ms = request.cmd === 'watch' ? Math.max(100, request.interval_ms ?? 500) : 0
      const timer =
        interval_ms > 0
          ? setInterval(() => send(socket, { ok: true, status: node.status() }), interval_ms)
          : null
      socket.once('close', () => {
        stop()
        if (timer) clearInterval(timer)
      })
      send(socket, { ok: true, status: node.status() })
      if (request.cmd === 'leave') {
        log.info({ event: 'leave_requested' }, 'leave requested')
        node.leave()
      }
      return
    }
    default:
      send(socket, {
        ok: false,
        error: `unknown command ${JSON.stringify((request as { cmd?: unknown })?.cmd)}`,
      })
      socket.end()
  }
}
