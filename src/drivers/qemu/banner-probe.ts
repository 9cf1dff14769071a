import { connect } from 'node:net'

/**
 * Connects to 127.0.0.1:port and resolves with the first line the service sends when it matches
 * `banner`; rejects otherwise. A bare TCP connect proves nothing under QEMU user networking (the host
 * side of a forward accepts even when no guest listens), so the banner is the evidence.
 */
export function probeBanner(port: number, banner: RegExp, timeout_ms: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port })
    let text = ''
    const finish = (error: Error | null, line = '') => {
      clearTimeout(timer)
      socket.destroy()
      error ? reject(error) : resolve(line)
    }
    const timer = setTimeout(
      () => finish(new Error(`no banner on port ${port} in ${timeout_ms} ms`)),
      timeout_ms,
    )
    socket.setEncoding('utf8')
    socket.on('data', (chunk: string) => {
      text += chunk
      const nl = text.indexOf('\n')
      if (nl < 0 && text.length < 4096) return
      const line = (nl < 0 ? text : text.slice(0, nl)).replace(/\r$/, '')
      if (banner.test(line)) finish(null, line)
      else finish(new Error(`unexpected banner on port ${port}: ${JSON.stringify(line.slice(0, 200))}`))
    })
    socket.on('end', () => {
      const line = text.replace(/\r?\n$/, '')
      if (line && banner.test(line)) finish(null, line)
      else finish(new Error(`port ${port} closed without the banner`))
    })
    socket.on('error', (error) => finish(new Error(`port ${port}: ${error.message}`)))
  })
}
