import net from 'node:net'
import { ENV } from './protocol.ts'

/** The line the node writes on the start descriptor when a prestarted service is to go on. */
export const START_LINE = 'start\n'

/**
 * For services whose manifest sets `prestart: true`. The top candidate starts the command before it is
 * needed, with ENV.start_fd naming a pipe; the service loads its code, then awaits this before it
 * reads its state directory or listens: a failover then costs the listen, not the process start.
 * Resolves at once when the service was started the ordinary way (no ENV.start_fd). When the node
 * drops the prestarted copy (or dies) the pipe ends without the line, and the process exits 0 here:
 * it never touched the state.
 */
export function waitForStart(env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const fd_text = env[ENV.start_fd]
  if (fd_text === undefined || fd_text === '') return Promise.resolve()
  const fd = Number(fd_text)
  if (!Number.isInteger(fd) || fd < 3) throw new Error(`${ENV.start_fd} is not a descriptor: ${fd_text}`)
  return new Promise((resolve) => {
    const pipe = new net.Socket({ fd, readable: true, writable: false })
    let text = ''
    const onData = (chunk: Buffer) => {
      text += chunk.toString('latin1')
      if (!text.includes('\n')) return
      pipe.off('data', onData)
      pipe.off('end', gone)
      pipe.off('error', gone)
      // Later EOF (the node dying) is the fence's business, not ours: stop reading, keep the fd open.
      pipe.pause()
      pipe.unref()
      resolve()
    }
    const gone = () => process.exit(0)
    pipe.on('data', onData)
    pipe.once('end', gone)
    pipe.once('error', gone)
  })
}
