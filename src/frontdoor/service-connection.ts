import net from 'node:net'
import type { OutputCommit } from './output-commit.ts'
import { OutputGate } from './output-gate.ts'
import { proxyV2Header } from './proxy-v2.ts'

/**
 * Calls `onClosed` once the service connection is gone and everything its gate held went on: a service
 * that answers and closes at once (an SMTP 221) has its last answer delivered, not cut.
 */
export function whenDrained(service: ServiceConnection, onClosed: () => void): void {
  service.socket.once('close', () => {
    const { output } = service
    if (service.socket.readableEnded && !output.readableEnded && !output.destroyed) {
      output.once('end', () => setImmediate(onClosed))
      output.once('close', onClosed)
    } else onClosed()
  })
}

export interface ClientAddress {
  host: string
  port: number
}

export interface ServiceConnection {
  socket: net.Socket
  /** What the service sends, through the output gate. */
  output: OutputGate
}

/** A service connect that takes longer fails (the service is restarting or wedged). */
const SERVICE_CONNECT_TIMEOUT_MS = 3000

/**
 * Connects to the local service's port on 127.0.0.1 with half-close allowed; with `proxy` the
 * connection starts with a PROXY protocol v2 header naming the client, so the service sees the client
 * rather than the front door. Rejects if the service does not accept in time. With `commit` (output
 * commit on) what the service sends is held in the gate until released.
 */
export function connectService(
  port: number,
  client: ClientAddress,
  proxy: boolean,
  local: ClientAddress,
  commit: OutputCommit | null = null,
): Promise<ServiceConnection> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true })
    socket.setNoDelay(true)
    const timer = setTimeout(
      () => socket.destroy(new Error('service connect timeout')),
      SERVICE_CONNECT_TIMEOUT_MS,
    )
    socket.once('error', (error) => {
      clearTimeout(timer)
      reject(error)
    })
    socket.once('connect', () => {
      clearTimeout(timer)
      socket.removeAllListeners('error')
      socket.on('error', () => {}) // 'close' follows; the splice acts on it
      if (proxy) socket.write(proxyV2Header(client, local))
      const output = new OutputGate(commit)
      socket.pipe(output)
      resolve({ socket, output })
    })
  })
}
