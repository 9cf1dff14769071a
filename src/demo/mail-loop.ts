import SMTPConnection from 'nodemailer/lib/smtp-connection'

/** A failed transaction and whether the service had greeted the client (else: refused, to the client). */
class TransactionError extends Error {
  constructor(
    readonly greeted: boolean,
    cause: unknown,
  ) {
    super(String((cause as Error)?.message ?? cause))
  }
}

/**
 * One SMTP transaction on a fresh connection (EHLO, MAIL, RCPT, DATA, QUIT). Rejects with whether the
 * failure came before the greeting and EHLO were answered (a refusal as the client sees it) or after
 * (a transaction cut).
 */
async function transaction(host: string, port: number, subject: string, text: string, timeout_ms: number) {
  const conn = new SMTPConnection({
    host,
    port,
    name: 'sustain-client.localhost',
    ignoreTLS: true,
    connectionTimeout: timeout_ms,
    greetingTimeout: timeout_ms,
    socketTimeout: timeout_ms,
  })
  conn.on('error', () => {}) // reported through the callbacks below
  try {
    await new Promise<void>((resolve, reject) =>
      // Greeted: some answer of the service reached the client (the banner) before the failure.
      conn.connect((error) =>
        error ? reject(new TransactionError(conn.lastServerResponse !== false, error)) : resolve(),
      ),
    )
    const message = `From: client@example.org\r\nTo: alice@example.org\r\nSubject: ${subject}\r\n\r\n${text}`
    await new Promise<void>((resolve, reject) =>
      conn.send({ from: 'client@example.org', to: ['alice@example.org'] }, message, (error) =>
        error ? reject(new TransactionError(true, error)) : resolve(),
      ),
    )
    conn.quit()
  } finally {
    conn.close()
  }
}

/** What a client that only knows one front-door address saw while it kept sending mail. */
export interface ClientRecord {
  sent: number
  acked: Map<number, number>
  /** Connections that failed before the service greeted the client (refused, reset, closed, timed out). */
  refused: number
  /** Transactions that failed after the greeting (their server died mid-way), then retried. */
  failed: number
  /** Longest time between two acknowledgements (ms). */
  outage_ms: number
  /** Longest single successful transaction (connect to 250 after DATA): how long a held one waited. */
  slowest_ms: number
}

/** One attempt of a transaction: wall-clock start and end (ms), and how it ended. */
export interface Attempt {
  n: number
  start_ms: number
  end_ms: number
  outcome: 'acked' | 'refused' | 'failed'
  error?: string
}

/** Attempts kept (the newest): enough for a failover's timeline around the last few seconds. */
const MAX_ATTEMPTS_KEPT = 200

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
  /** The newest attempts (at most MAX_ATTEMPTS_KEPT), for a timeline. */
  readonly attempts: Attempt[] = []
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
          await transaction(
            this.host,
            this.port,
            `${this.subject_prefix}-${n}`,
            `mail ${n}\r\n`,
            this.timeout_ms,
          )
          const now = Date.now()
          this.record.acked.set(n, now)
          this.record.outage_ms = Math.max(this.record.outage_ms, now - last_ack)
          this.record.slowest_ms = Math.max(this.record.slowest_ms, now - started)
          last_ack = now
          this.note({ n, start_ms: started, end_ms: now, outcome: 'acked' })
          break
        } catch (error) {
          const message = String((error as Error).message)
          if (this.errors.length < 50) this.errors.push(message)
          const greeted = error instanceof TransactionError && error.greeted
          if (greeted) this.record.failed++
          else this.record.refused++
          this.note({
            n,
            start_ms: started,
            end_ms: Date.now(),
            outcome: greeted ? 'failed' : 'refused',
            error: message,
          })
          if (this.pause_ms > 0) await new Promise((resolve) => setTimeout(resolve, this.pause_ms))
        }
      }
    }
  }

  private note(attempt: Attempt): void {
    this.attempts.push(attempt)
    if (this.attempts.length > MAX_ATTEMPTS_KEPT) this.attempts.shift()
  }

  async stop(): Promise<ClientRecord> {
    this.stopping = true
    await this.done
    return this.record
  }
}
