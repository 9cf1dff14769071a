import type net from 'node:net'
import type { ServiceConnection } from './service-connection.ts'

/**
 * A client of the server's own front door, joined to the service: client bytes straight in, the
 * service's bytes out through its output gate. pipe() ends the destination when the source ends, so a
 * half-close passes through; an error on either side destroys both (the client is never left open on
 * a dead service).
 */
export function spliceLocal(client: net.Socket, service: ServiceConnection, onClose: () => void): void {
  client.pipe(service.socket)
  service.output.pipe(client)
  const teardown = () => {
    client.destroy()
    service.socket.destroy()
  }
  client.once('error', teardown)
  service.socket.once('error', teardown)
  let open = 2
  const closed = () => {
    if (--open === 0) onClose()
  }
  client.once('close', closed)
  service.socket.once('close', closed)
  client.resume()
}
