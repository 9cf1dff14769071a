import { sendMail } from '../../examples/mail/smtp-client.ts'

/** What a client that only knows one front-door address saw while it kept sending mail. */
export interface ClientRecord {
  sent: number
  acked: Map<number, number>
  /** Connections refused (ECONNREFUSED) or reset before any answer. */
  refused: number
  /** Transactions that failed after the connection was accepted (server died mid-way), then retried. */
  failed: number
  /** Longest time between two acknowledgements (ms). */
  outage_ms: number
  /** Longest single successful transaction (connect to 250 after DATA): how long a held one waited. */
  slowest_ms: number
}

/**
 * A client that knows one address: sends numbered mails one after another to it until stopped,
 * retrying a failed one at once (a real client's retry), and records refusals, failures and the
 * longest gap between acknowledgements. Shares no code with the front door (a checker must not trust
 * what it checks). Used by `sustain demo` and the front-door tests.
 */
export class MailLoop {
  readonly record: ClientRecord = {
    sent: 0,
    acked: new Map(),
    refused: 0,
    failed: 0,
    outage_ms: 0,
    slowest_ms: 0,
  }
  private stopping = false
  /** Messages of the first 50 failed attempts, for a report. */
  readonly errors: string[] = []
  private readonly done: Promise<void>

  constructor(
    private readonly host: string,
    private readonly port: number,
    private readonly subject_prefix: string,
    private readonly timeout_ms = 15_000,
    /** Wait between a failed attempt and the next (0: retry at once). */
    private readonly pause_ms = 0,
  ) {
    this.done = this.run()
  }

  private async run(): Promise<void> {
    let last_ack = Date.now()
    for (let n = 1; !this.stopping && n <= 100_000; n++) {
      this.record.sent = n
      for (let attempt = 0; !this.stopping && attempt < 1000; attempt++) {
        const started = Date.now()
        try {
          await sendMail({
            host: this.host,
            port: this.port,
            from: 'client@example.org',
            to: ['alice@example.org'],
            subject: `${this.subject_prefix}-${n}`,
            text: `mail ${n}\n`,
            timeout_ms: this.timeout_ms,
          })
          const now = Date.now()
          this.record.acked.set(n, now)
          this.record.outage_ms = Math.max(this.record.outage_ms, now - last_ack)
          this.record.slowest_ms = Math.max(this.record.slowest_ms, now - started)
          last_ack = now
          break
        } catch (error) {
          if (this.errors.length < 50) this.errors.push(String((error as Error).message))
          if (/ECONNREFUSED|ECONNRESET/.test(String((error as Error).message))) this.record.refused++
          else this.record.failed++
          if (this.pause_ms > 0) await new Promise((resolve) => setTimeout(resolve, this.pause_ms))
        }
      }
    }
  }

  async stop(): Promise<ClientRecord> {
    this.stopping = true
    await this.done
    return this.record
  }
}
