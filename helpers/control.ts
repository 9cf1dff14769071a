import { connect } from 'node:net'

/**
 * Asks the node for a snapshot now: one JSON line `{"cmd":"snapshot"}` on its control socket
 * (SUSTAIN_CONTROL_SOCKET). Resolves with the node's first answer line, parsed.
 */
export function requestSnapshot(socket_path: string, timeout_ms = 10_000): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const socket = connect(socket_path)
    let text = ''
    const timer = setTimeout(() => {
      socket.destroy()
      reject(new Error(`no answer from ${socket_path} within ${timeout_ms} ms`))
    }, timeout_ms)
    socket.setEncoding('utf8')
    socket.on('connect', () => socket.write(`${JSON.stringify({ cmd: 'snapshot' })}\n`))
    socket.on('data', (chunk: string) => {
      text += chunk
      const at = text.indexOf('\n')
      if (at === -1) return
      clearTimeout(timer)
      socket.end()
      try {
        resolve(JSON.parse(text.slice(0, at)))
      } catch {
        reject(new Error(`the node answered something that is not JSON: ${text.slice(0, 80)}`))
      }
    })
    socket.on('error', (error) => {
      clearTimeout(timer)
      reject(error)
    })
  })
}
