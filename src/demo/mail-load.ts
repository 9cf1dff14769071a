import { sendMail } from '../../examples/mail/smtp-client.ts'

export interface MailLoadOptions {
  /** Loopback ports of every node: the client knows addresses, not which node serves. */
  ports: number[]
  /** Pause between two mails (after an acknowledgement or a failed round). */
  interval_ms: number
  /** Per-connection SMTP timeouts: a held or dead connection moves on to the next address. */
  timeout_ms?: number
  to?: string
  /** Subject prefix: mail n is `${prefix}-${n}`. */
  prefix?: string
  /** Bound on the mails attempted (every load loop is bounded). */
  max_mails?: number
}

/**
 * A plain SMTP client that only knows the nodes' addresses: each mail goes to the address that answered
 * last, else to the next one that answers. Every attempt is a new numbered message, so a mail whose
 * acknowledgement was lost is never counted twice. `acked` holds when each acknowledged number got its
 * 250 after DATA; gaps between acknowledgements are what the client saw as an outage.
 */
export class MailLoad {
  readonly acked = new Map<number, number>()
  /** Every attempt: its port, start and end (ms since the epoch), acknowledged or not (diagnostics). */
  readonly attempts: Array<{ port: number; from_ms: number; to_ms: number; ok: boolean }> = []
  attempted = 0
  private stopping = false
  private loop: Promise<void> | null = null
  private port_index = 0

  constructor(private readonly options: MailLoadOptions) {
    if (options.ports.length === 0) throw new Error('MailLoad needs at least one port')
  }

  start(): void {
    if (this.loop) throw new Error('MailLoad already started')
    this.loop = this.run()
  }

  private async run(): Promise<void> {
    const { ports, interval_ms } = this.options
    const max = this.options.max_mails ?? 1_000_000
    while (!this.stopping && this.attempted < max) {
      // One round: from the last address that answered, each address once, until one acknowledges.
      for (let tried = 0; tried < ports.length && !this.stopping && this.attempted < max; tried++) {
        const n = ++this.attempted
        const port = ports[this.port_index]!
        const from_ms = Date.now()
        try {
          await sendMail({
            port,
            from: 'load@example.org',
            to: [this.options.to ?? 'alice@example.org'],
            subject: `${this.options.prefix ?? 'load'}-${n}`,
            text: `mail ${n}\n`,
            timeout_ms: this.options.timeout_ms ?? 2000,
          })
          this.acked.set(n, Date.now())
          this.attempts.push({ port, from_ms, to_ms: Date.now(), ok: true })
          break
        } catch {
          this.attempts.push({ port, from_ms, to_ms: Date.now(), ok: false })
          this.port_index = (this.port_index + 1) % ports.length
        }
      }
      await new Promise((resolve) => setTimeout(resolve, interval_ms))
    }
  }

  async stop(): Promise<void> {
    this.stopping = true
    await this.loop
  }

  /** Acknowledged numbers (ascending). */
  ackedNumbers(): number[] {
    return [...this.acked.keys()].sort((a, b) => a - b)
  }

  /**
   * Longest time without an acknowledgement that overlaps [from_ms, to_ms]: from the last ack at or
   * before from_ms (or from_ms) to the first ack after it, over every gap that starts before to_ms.
   */
  longestGap(from_ms: number, to_ms: number): number {
    const times = [...this.acked.values()].sort((a, b) => a - b)
    let previous = from_ms
    for (const t of times) if (t <= from_ms) previous = t
    let longest = 0
    for (const t of times) {
      if (t <= from_ms) continue
      longest = Math.max(longest, t - previous)
      previous = t
      if (t >= to_ms) return longest
    }
    // No acknowledgement after to_ms yet: the gap is still open.
    return Math.max(longest, Date.now() - previous)
  }
}
