import { appendFile, mkdir, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PassThrough, Readable } from 'node:stream'
import { afterEach } from 'vitest'
import { mboxRecord } from '../../helpers/mbox/format.ts'

const dirs: string[] = []
afterEach(async () => {
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true })
})

/** A temp directory removed after the test. */
export async function tempDir(prefix = 'sustain-helpers-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix))
  dirs.push(dir)
  return dir
}

/** Collects what `write` writes to the stream it is given. */
export async function collect(write: (out: PassThrough) => Promise<unknown>): Promise<Buffer> {
  const out = new PassThrough()
  const chunks: Buffer[] = []
  out.on('data', (chunk: Buffer) => chunks.push(chunk))
  await write(out)
  out.end()
  return Buffer.concat(chunks)
}

/** The buffer as a stream of chunks of `size` bytes (records straddle chunk boundaries). */
export function chunked(data: Buffer, size: number): Readable {
  const chunks: Buffer[] = []
  for (let at = 0; at < data.length; at += size) chunks.push(data.subarray(at, at + size))
  return Readable.from(chunks)
}

export interface TestMessage {
  id?: string
  subject: string
  time_ms: number
  body?: string
  from?: string
}

export function messageText(message: TestMessage): string {
  const id = message.id ? `Message-ID: <${message.id}>\n` : ''
  return `${id}From: ${message.from ?? 'sender@example.net'}\nSubject: ${message.subject}\n\n${message.body ?? `body of ${message.subject}\n`}`
}

/** Appends messages to `<spool>/<mailbox>` as a delivery agent would. */
export async function deliver(spool: string, mailbox: string, messages: TestMessage[]): Promise<void> {
  await mkdir(spool, { recursive: true })
  const records = messages.map((m) =>
    mboxRecord(m.from ?? 'sender@example.net', new Date(m.time_ms), messageText(m)),
  )
  await appendFile(join(spool, mailbox), Buffer.concat(records))
}
