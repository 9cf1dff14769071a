import { createTransport } from 'nodemailer'

export interface SendMailOptions {
  port: number
  host?: string
  from: string
  to: string[]
  subject: string
  text: string
  /** Sets the Message-ID header (else the client makes one). */
  message_id?: string
  timeout_ms?: number
}

export interface SentMail {
  message_id: string
  /** The server's reply to the end of DATA (250 ...). */
  response: string
}

/**
 * Sends one message over a fresh SMTP connection (EHLO, MAIL FROM, RCPT TO, DATA, QUIT). Resolves when
 * the server answered 250 to the end of DATA: the message is acknowledged.
 */
export async function sendMail(options: SendMailOptions): Promise<SentMail> {
  const timeout_ms = options.timeout_ms ?? 5000
  const transport = createTransport({
    host: options.host ?? '127.0.0.1',
    port: options.port,
    secure: false,
    ignoreTLS: true,
    name: 'sustain-client.localhost',
    connectionTimeout: timeout_ms,
    greetingTimeout: timeout_ms,
    socketTimeout: timeout_ms,
  })
  try {
    const info = await transport.sendMail({
      from: options.from,
      to: options.to,
      subject: options.subject,
      text: options.text,
      ...(options.message_id ? { messageId: options.message_id } : {}),
    })
    if (!/^250[ -]/.test(info.response)) throw new Error(`server did not acknowledge: ${info.response}`)
    return { message_id: info.messageId, response: info.response }
  } finally {
    transport.close()
  }
}
