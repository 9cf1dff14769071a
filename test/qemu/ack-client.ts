import { connect, type Socket } from 'node:net'
import { performance } from 'node:perf_hooks'

/** A front door address a client knows. */
export interface Door {
  host: string
  port: number
}

/**
 * A client of the guest's acknowledging line service (examples/qemu-guest/guest/ack.sh) that knows the
 * front doors' addresses and nothing else. It sends one line at a time, each a new id, and counts a line
 * as acknowledged only when "OK N" came back for it. A connection that ends with a line unanswered drops
 * that line (never sent again: a cut acknowledgement is never counted twice) and the client reconnects
 * to the next door. Shares no code with the front door or the snapshot path.
 */
export class AckClient {
  /** Acknowledged ids, in order, with when the ack came (Date.now()) and send-to-ack latency (ms). */
  readonly acked: { id: string; at_ms: number; latency_ms: number }[] = []
  /** Sent but never acknowledged (their connection ended first). */
  readonly unanswered: string[] = []
  connections = 0
  private seq = 0
  private stopping = false
  private done: Promise<void> | null = null

  constructor(
    private readonly tag: string,
    private readonly doors: readonly Door[],
    /** Bound on connection attempts, so a run without a server ends. */
    private readonly max_connections = 200,
  ) {}

  start(): void {
    this.done = this.loop()
  }

  /** Stops after the line in flight (its answer, or its connection's end). */
  async stop(): Promise<void> {
    this.stopping = true
    await this.done
  }

  private async loop(): Promise<void> {
    for (let door = 0; !this.stopping && this.connections < this.max_connections; door++) {
      this.connections += 1
      await this.session(this.doors[door % this.doors.length]!).catch(() => {})
      if (!this.stopping) await new Promise((ok) => setTimeout(ok, 200))
    }
  }

  /** One connection: lines until it ends or the client stops. */
  private session(door: Door): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const socket: Socket = connect(door.port, door.host)
      let buffered = ''
      let pending: { id: string; sent_ms: number } | null = null
      const sendNext = () => {
        if (this.stopping) {
          socket.end()
          return
        }
        const id = `${this.tag}-${++this.seq}`
        pending = { id, sent_ms: performance.now() }
        socket.write(`${id}\n`)
      }
      socket.setNoDelay(true)
      socket.once('connect', sendNext)
      socket.on('data', (chunk: Buffer) => {
        buffered += chunk.toString('utf8')
        for (let nl = buffered.indexOf('\n'); nl >= 0; nl = buffered.indexOf('\n')) {
          const line = buffered.slice(0, nl)
          buffered = buffered.slice(nl + 1)
          if (!/^OK \d+$/.test(line) || pending === null) {
            socket.destroy(new Error(`unexpected answer ${JSON.stringify(line)}`))
            return
          }
          this.acked.push({
            id: pending.id,
            at_ms: Date.now(),
            latency_ms: performance.now() - pending.sent_ms,
          })
          pending = null
          sendNext()
        }
      })
      socket.once('close', () => {
        if (pending) this.unanswered.push(pending.id)
        pending = null
        resolve()
      })
      socket.once('error', reject)
    })
  }
}

/** Every line the guest stored, asked through a front door (`?` answers them, then END). */
export function readStored(door: Door, timeout_ms: number): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const socket = connect(door.port, door.host)
    let text = ''
    const timer = setTimeout(
      () => socket.destroy(new Error(`no END from ${door.host}:${door.port} in ${timeout_ms} ms`)),
      timeout_ms,
    )
    socket.once('connect', () => socket.write('?\n'))
    socket.on('data', (chunk: Buffer) => {
      text += chunk.toString('utf8')
      if (text.endsWith('END\n')) {
        clearTimeout(timer)
        socket.end()
        resolve(text.split('\n').slice(0, -2))
      }
    })
    socket.once('error', (error) => {
      clearTimeout(timer)
      reject(error)
    })
    socket.once('close', () => {
      clearTimeout(timer)
      if (!text.endsWith('END\n')) reject(new Error(`connection closed before END (${text.length} bytes)`))
    })
  })
}
