/**
 * mbox (mboxo, as Postfix writes it): each message starts with a `From <sender> <asctime date>` line;
 * body lines starting with `From ` are quoted as `>From `; a blank line follows each message; LF line
 * endings. Every line that starts with `From ` therefore starts a message (Python's mailbox module
 * reads it the same way). The separator date is local time, as Postfix's `asctime(localtime())`.
 */
import { createHash } from 'node:crypto'

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat']
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec']
const FROM = Buffer.from('From ')
const NL_FROM = Buffer.from('\nFrom ')

export class MboxError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'MboxError'
  }
}

/** `Mon Nov 23 13:59:01 2026` in local time: the date of an mbox separator line. */
export function asctime(date: Date): string {
  const two = (n: number) => String(n).padStart(2, '0')
  const time = `${two(date.getHours())}:${two(date.getMinutes())}:${two(date.getSeconds())}`
  const day = String(date.getDate()).padStart(2, ' ')
  return `${DAYS[date.getDay()]} ${MONTHS[date.getMonth()]} ${day} ${time} ${date.getFullYear()}`
}

const ASCTIME =
  /(?:Sun|Mon|Tue|Wed|Thu|Fri|Sat) +([A-Z][a-z]{2}) +(\d{1,2}) (\d{2}):(\d{2}):(\d{2}) (\d{4})\s*$/

/** The delivery time (epoch ms, local time, whole seconds) of a `From ` line, or null if it has none. */
export function fromLineTimeMs(line: string): number | null {
  const match = ASCTIME.exec(line)
  if (!match) return null
  const month = MONTHS.indexOf(match[1]!)
  if (month === -1) return null
  const [day, hours, minutes, seconds, year] = [2, 3, 4, 5, 6].map((i) => Number(match[i]))
  return new Date(year!, month, day!, hours!, minutes!, seconds!).getTime()
}

/** Where the header section ends (index of the blank line), or -1 for a message without a body. */
function headerEnd(text: string): number {
  const match = /\r?\n\r?\n/.exec(text)
  return match ? match.index : -1
}

export function headerValue(message: string, name: string): string | undefined {
  const end = headerEnd(message)
  const headers = end === -1 ? message : message.slice(0, end)
  const match = new RegExp(`^${name}:[ \\t]*(.*(?:\\r?\\n[ \\t].*)*)$`, 'im').exec(headers)
  const value = match?.[1]?.replace(/\s+/g, ' ').trim()
  return value || undefined
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

/**
 * Offsets where records start in `data` (a whole mbox or a window of one that begins at a record):
 * offset 0, then every `From ` at the start of a line.
 */
export function recordStarts(data: Buffer, from = 0): number[] {
  const starts: number[] = []
  if (from === 0 && data.length > 0) starts.push(0)
  for (let at = data.indexOf(NL_FROM, from); at !== -1; at = data.indexOf(NL_FROM, at + 1)) {
    starts.push(at + 1)
  }
  return starts
}

export function startsWithFrom(data: Buffer): boolean {
  return data.length >= FROM.length && data.subarray(0, FROM.length).equals(FROM)
}

export interface RecordInfo {
  /** Delivery time from the separator line (epoch ms), or null when it has no date. */
  time_ms: number | null
  /** `id:<Message-ID>` or, without one, `sha256:<hash of the record after its separator line>`. */
  key: string
}

/** The delivery time and identity of one mbox record (its `From ` line through its trailing blank line). */
export function recordInfo(record: Buffer): RecordInfo {
  let line_end = record.indexOf(10)
  if (line_end === -1) line_end = record.length
  const time_ms = fromLineTimeMs(record.toString('latin1', 0, line_end))
  let header_end = record.indexOf('\n\n', line_end)
  if (header_end === -1) header_end = record.length
  const headers = record.toString('latin1', line_end + 1, header_end)
  const id = /^message-id:[ \t]*(.*(?:\n[ \t].*)*)$/im.exec(headers)?.[1]?.replace(/\s+/g, ' ').trim()
  if (id) return { time_ms, key: `id:${id}` }
  let end = record.length
  while (end > line_end + 1 && record[end - 1] === 10) end--
  const hash = createHash('sha256')
    .update(record.subarray(Math.min(line_end + 1, end), end))
    .digest('hex')
  return { time_ms, key: `sha256:${hash}` }
}

/** The record, ending in a blank line (a record cut at a file's end may lack it). */
export function terminated(record: Buffer): Buffer {
  if (record.length >= 2 && record[record.length - 1] === 10 && record[record.length - 2] === 10)
    return record
  return Buffer.concat([record, Buffer.from(record[record.length - 1] === 10 ? '\n' : '\n\n')])
}

export interface MboxMessage {
  /** The separator line without `From `. */
  envelope: string
  /** The message with quoting undone, LF line endings. */
  text: string
}

/**
 * Parses a whole mbox. Throws MboxError on a torn file: text before the first separator, a message
 * without the blank line that ends its headers, or a last message not followed by a blank line.
 */
export function parseMbox(text: string): MboxMessage[] {
  if (text === '') return []
  const data = Buffer.from(text, 'utf8')
  if (!startsWithFrom(data)) throw new MboxError('mbox does not start with a From line')
  if (!text.endsWith('\n\n'))
    throw new MboxError('mbox ends inside a message (no blank line after the last one)')
  const starts = recordStarts(data)
  return starts.map((start, n) => {
    const record = data.toString('utf8', start, starts[n + 1] ?? data.length)
    const lines = record.split('\n')
    const message_lines = lines.slice(1, -2) // without the separator, the blank line and the final ''
    if (!message_lines.includes('')) throw new MboxError(`message ${n + 1} has no end of headers (torn)`)
    const unquoted = message_lines.map((line) => (line.startsWith('>From ') ? line.slice(1) : line))
    return { envelope: lines[0]!.slice('From '.length), text: `${unquoted.join('\n')}\n` }
  })
}
