/**
 * mbox (mboxo): each message starts with a `From <sender> <asctime date>` line; body lines starting with
 * `From ` are quoted as `>From `; a blank line follows each message. Line endings are LF.
 */

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat']
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec']

/** `Mon Nov 23 13:59:01 2026` (asctime, UTC), the date of an mbox separator line. */
export function asctime(date: Date): string {
  const two = (n: number) => String(n).padStart(2, '0')
  const time = `${two(date.getUTCHours())}:${two(date.getUTCMinutes())}:${two(date.getUTCSeconds())}`
  const day = String(date.getUTCDate()).padStart(2, ' ')
  return `${DAYS[date.getUTCDay()]} ${MONTHS[date.getUTCMonth()]} ${day} ${time} ${date.getUTCFullYear()}`
}

/** Where the header section ends (index of the blank line), or -1 for a message without a body. */
function headerEnd(text: string): number {
  const match = /\r?\n\r?\n/.exec(text)
  return match ? match.index : -1
}

export function headerValue(message: string, name: string): string | undefined {
  const end = headerEnd(message)
  const headers = end === -1 ? message : message.slice(0, end)
  const match = new RegExp(`^${name}:[ \\t]*(.*)$`, 'im').exec(headers)
  return match?.[1]?.trim()
}

/** Adds a Message-ID header when the message has none; returns the message and its id. */
export function ensureMessageId(
  message: string,
  make_id: () => string,
): { message: string; message_id: string } {
  const existing = headerValue(message, 'Message-ID')
  if (existing) return { message, message_id: existing }
  const message_id = make_id()
  return { message: `Message-ID: ${message_id}\r\n${message}`, message_id }
}

/** One mbox record for `message` (RFC 5322 text, CRLF or LF), ready to append in a single write. */
export function mboxRecord(sender: string, date: Date, message: string): Buffer {
  let text = message.replace(/\r\n/g, '\n').replace(/\n+$/, '')
  if (headerEnd(text) === -1) text += '\n' // headers only: add the empty body's separator
  const lines = text.split('\n')
  const quoted = lines.map((line) => (line.startsWith('From ') ? `>${line}` : line))
  return Buffer.from(`From ${sender || 'MAILER-DAEMON'} ${asctime(date)}\n${quoted.join('\n')}\n\n`, 'utf8')
}

export interface MboxMessage {
  /** The separator line without `From `. */
  envelope: string
  /** The message with quoting undone, LF line endings. */
  text: string
}

export class MboxError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'MboxError'
  }
}

/**
 * Parses an mbox written by mboxRecord. Throws MboxError on a torn file: text before the first
 * separator, a message without the blank line that ends its headers, or a last message not followed by
 * a blank line.
 */
export function parseMbox(text: string): MboxMessage[] {
  if (text === '') return []
  if (!text.startsWith('From ')) throw new MboxError('mbox does not start with a From line')
  if (!text.endsWith('\n\n'))
    throw new MboxError('mbox ends inside a message (no blank line after the last one)')
  const lines = text.split('\n')
  lines.pop() // after the final LF
  const starts: number[] = []
  for (let i = 0; i < lines.length; i++) {
    if (lines[i]!.startsWith('From ') && (i === 0 || lines[i - 1] === '')) starts.push(i)
  }
  return starts.map((start, n) => {
    const end = (starts[n + 1] ?? lines.length) - 1 // the blank line after the message
    const message_lines = lines.slice(start + 1, end)
    if (!message_lines.includes('')) throw new MboxError(`message ${n + 1} has no end of headers (torn)`)
    const unquoted = message_lines.map((line) => (line.startsWith('>From ') ? line.slice(1) : line))
    return { envelope: lines[start]!.slice('From '.length), text: `${unquoted.join('\n')}\n` }
  })
}
