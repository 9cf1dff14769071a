import net from 'node:net'
import { OutputGate } from './output-gate.ts'
import { proxyV2Header } from './proxy-v2.ts'

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
 * rather than the front door. Rejects if the service does not accept in time.
 */
export function connectService(
  port: number,
  client: ClientAddress,
  proxy: boolean,
  local: ClientAddress,
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
      const output = new OutputGate()
      socket.pipe(output)
      resolve({ socket, output })
    })
  })
}
