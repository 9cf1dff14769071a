/**
 * The example mail service: SMTP on 127.0.0.1:$SUSTAIN_PORT, accepting mail for any local part at
 * $MAIL_DOMAIN (example.org), appending each message to $SUSTAIN_STATE_DIR/mail/<localpart> as mbox.
 * A message is acknowledged (250) only after its mailbox file is fsynced.
 */
import { randomUUID } from 'node:crypto'
import { mkdirSync, readdirSync, unlinkSync } from 'node:fs'
import { open } from 'node:fs/promises'
import { join } from 'node:path'
import { SMTPServer, type SMTPServerAddress } from 'smtp-server'
import { dotlockPath, takeDotlock, waitForStart } from '../../helpers/index.ts'
import { fsyncDir } from '../../lib/atomic-write.ts'
import { ensureMessageId, mboxRecord } from './mbox.ts'

const port = Number(process.env['SUSTAIN_PORT'])
const state_dir = process.env['SUSTAIN_STATE_DIR']
const domain = (process.env['MAIL_DOMAIN'] ?? 'example.org').toLowerCase()
const MAX_MESSAGE_BYTES = 10 * 1024 * 1024

if (!Number.isInteger(port) || port <= 0 || port > 65535 || !state_dir) {
  process.stderr.write('mail server: SUSTAIN_PORT and SUSTAIN_STATE_DIR must be set\n')
  process.exit(2)
}
// Prestarted on the top candidate (prestart: true): loaded, then nothing touches the state before this.
await waitForStart()
const mail_dir = join(state_dir, 'mail')
/** Dotlocks `<mailbox>.lock`, shared with the merge helper (MBOX_LOCK_DIR in ./helper), kept out of the spool. */
const lock_dir = join(state_dir, 'mail-locks')
mkdirSync(mail_dir, { recursive: true })
mkdirSync(lock_dir, { recursive: true })
/** How long a delivery waits for a mailbox another process (the merge helper) has locked. */
const LOCK_TIMEOUT_MS = 60_000
// Dotlocks left in the state by a crash or captured in a snapshot: nobody else writes here before we run.
for (const name of readdirSync(lock_dir)) if (name.endsWith('.lock')) unlinkSync(join(lock_dir, name))

class SmtpReply extends Error {
  constructor(
    readonly responseCode: number,
    message: string,
  ) {
    super(message)
  }
}

/** The mailbox file name for an address at our domain, or null (any other domain, odd local parts). */
function mailbox(address: string): string | null {
  const at = address.lastIndexOf('@')
  if (at === -1 || address.slice(at + 1).toLowerCase() !== domain) return null
  const local = address.slice(0, at).toLowerCase()
  return /^[a-z0-9][a-z0-9._+-]{0,63}$/.test(local) ? local : null
}

/**
 * One write per message, so a pause or a crash never leaves half a record behind a complete one. Under
 * the mailbox's dotlock, as Postfix delivers: the merge helper (helpers/mbox) replaces a mailbox by
 * rename while holding it, so the file opened here is always the current one.
 */
async function appendDurably(path: string, record: Buffer): Promise<void> {
  const unlock = await takeDotlock(dotlockPath(path, lock_dir), performance.now() + LOCK_TIMEOUT_MS)
  try {
    await appendOpen(path, record)
  } finally {
    await unlock()
  }
}

async function appendOpen(path: string, record: Buffer): Promise<void> {
  const handle = await open(path, 'a', 0o600)
  try {
    const created = (await handle.stat()).size === 0
    for (let at = 0; at < record.length; ) {
      at += (await handle.write(record, at, record.length - at)).bytesWritten
    }
    await handle.sync()
    if (created) await fsyncDir(mail_dir) // the new name survives a power cut too
  } finally {
    await handle.close()
  }
}

/** Deliveries to one mailbox run one after another: records never interleave. */
const queues = new Map<string, Promise<void>>()
function deliver(box: string, record: Buffer): Promise<void> {
  const previous = queues.get(box) ?? Promise.resolve()
  const next = previous.then(() => appendDurably(join(mail_dir, box), record))
  const tail = next.catch(() => {})
  queues.set(box, tail)
  void tail.then(() => {
    if (queues.get(box) === tail) queues.delete(box)
  })
  return next
}

const in_flight = new Set<Promise<void>>()

const server = new SMTPServer({
  name: `mail.${domain}`,
  banner: 'Sustain example mail service',
  authOptional: true,
  disabledCommands: ['AUTH', 'STARTTLS'],
  size: MAX_MESSAGE_BYTES,
  logger: false,
  // smtp-server looks up a PTR name for each client before its greeting (a DNS round trip on every
  // connection, up to 1.5 s with a slow resolver); nothing here reads the name. Its greeting also waits
  // a fixed 100 ms to catch clients that talk too soon (not configurable): most of a transaction's time.
  disableReverseLookup: true,
  onRcptTo(address: SMTPServerAddress, _session, callback) {
    if (mailbox(address.address) === null) {
      return callback(new SmtpReply(550, `no such mailbox here: ${address.address}`))
    }
    callback()
  },
  onData(stream, session, callback) {
    const chunks: Buffer[] = []
    stream.on('data', (chunk: Buffer) => chunks.push(chunk))
    stream.on('end', () => {
      if ((stream as { sizeExceeded?: boolean }).sizeExceeded) {
        return callback(new SmtpReply(552, `message exceeds ${MAX_MESSAGE_BYTES} bytes`))
      }
      const { message, message_id } = ensureMessageId(
        Buffer.concat(chunks).toString('utf8'),
        () => `<${randomUUID()}@${domain}>`,
      )
      const from = session.envelope.mailFrom ? session.envelope.mailFrom.address : ''
      const record = mboxRecord(from, new Date(), message)
      const boxes = new Set(session.envelope.rcptTo.map((rcpt) => mailbox(rcpt.address)!))
      const work = Promise.all([...boxes].map((box) => deliver(box, record))).then(() => {})
      in_flight.add(work)
      work.then(
        () => callback(null, `delivered as ${message_id}`),
        (error: Error) => callback(new SmtpReply(451, `delivery failed: ${error.message}`)),
      )
      void work.catch(() => {}).then(() => in_flight.delete(work))
    })
  },
})

server.on('error', (error: NodeJS.ErrnoException) => {
  process.stderr.write(`mail server: ${error.message}\n`)
  if (error.code === 'EADDRINUSE' || error.code === 'EACCES') process.exit(1)
})

server.listen(port, '127.0.0.1', () => {
  process.stdout.write(
    `mail server for @${domain} listening on 127.0.0.1:${port}, mailboxes in ${mail_dir}\n`,
  )
})

/** SIGTERM: stop accepting, finish the deliveries in progress (their clients get their 250), exit. */
process.once('SIGTERM', () => {
  server.close(() => {})
  void Promise.allSettled([...in_flight]).then(() => process.exit(0))
})
