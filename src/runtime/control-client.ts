import { connect } from 'node:net'
import type { ControlRequest } from './control-server.ts'

export class NodeNotRunning extends Error {}

/**
 * Sends one request and calls `onLine` for every JSON line the node answers, until it closes the
 * connection. Rejects with NodeNotRunning when nothing listens on the socket.
 */
export function controlRequest(
  socketPath: string,
  request: ControlRequest,
  onLine: (line: Record<string, unknown>) => void,
  timeout_ms = 10_000,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = connect(socketPath)
    let buffer = ''
    let settled = false
    const finish = (error?: Error) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      socket.destroy()
      if (error) reject(error)
      else resolve()
    }
    const timer = setTimeout(
      () => finish(new Error(`the node did not answer within ${timeout_ms} ms`)),
      timeout_ms,
    )
    socket.once('connect', () => {
      if (request.cmd === 'watch' || request.cmd === 'leave') clearTimeout(timer)
      socket.write(`${JSON.stringify(request)}\n`)
    })
    socket.on('data', (data) => {
      buffer += data.toString('utf8')
      for (let i = buffer.indexOf('\n'); i >= 0; i = buffer.indexOf('\n')) {
        const line = buffer.slice(0, i)
        buffer = buffer.slice(i + 1)
        if (line.length > 0) onLine(JSON.parse(line) as Record<string, unknown>)
      }
    })
    socket.once('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT' || error.code === 'ECONNREFUSED') {
        finish(new NodeNotRunning(`no node is running on ${socketPath}`))
      } else finish(error)
    })
    socket.once('close', () => finish())
  })
}
