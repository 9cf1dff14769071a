import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { connect, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { headerValue, parseMbox } from '../../examples/mail/mbox.ts'
import { sendMail } from '../../examples/mail/smtp-client.ts'
import { createLogger } from '../../lib/log.ts'
import { directoryImageWriter } from '../../snapshot/atomic-file.ts'
import { createCodecPool } from '../../snapshot/codec-pool.ts'
import { SnapshotEngine } from '../../snapshot/engine.ts'
import { SnapshotStore } from '../../snapshot/store.ts'
import {
  createProcessDriver,
  loadServiceManifest,
  type ProcessDriver,
} from '../../src/drivers/process/index.ts'
import { freePort } from '../../src/util/free-port.ts'
import { nextEvent } from '../drivers/fixtures.ts'

const SERVICE_DIR = resolve(import.meta.dirname, '../../examples/mail')

let dir: string
let port: number
let driver: ProcessDriver

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sustain-mail-'))
  port = await freePort()
  driver = createProcessDriver({
    service_dir: SERVICE_DIR,
    state_dir: join(dir, 'state'),
    port,
    log: createLogger({ level: 'silent' }),
    manifest: await loadServiceManifest(SERVICE_DIR),
  })
  const answering = nextEvent(driver, 'answering', 20_000)
  await driver.start()
  await answering
})
afterAll(async () => {
  await driver?.close()
  await rm(dir, { recursive: true, force: true })
})

async function mailbox(state_dir: string, name: string): Promise<string> {
  return readFile(join(state_dir, 'mail', name), 'utf8').catch(() => '')
}

/** A raw SMTP session: sends `lines` one by one, each after the previous reply; returns the replies. */
async function rawSmtp(lines: string[]): Promise<string[]> {
  const socket: Socket = connect(port, '127.0.0.1')
  const replies: string[] = []
  let buffer = ''
  let waiting: ((line: string) => void) | null = null
  socket.on('data', (chunk) => {
    buffer += chunk.toString()
    for (let nl = buffer.indexOf('\r\n'); nl !== -1; nl = buffer.indexOf('\r\n')) {
      const line = buffer.slice(0, nl)
      buffer = buffer.slice(nl + 2)
      if (/^\d{3} /.test(line)) waiting?.(line) // last line of a reply
    }
  })
  const reply = () => new Promise<string>((ok) => (waiting = ok))
  replies.push(await reply())
  for (const line of lines) {
    const next = reply()
    socket.write(`${line}\r\n`)
    replies.push(await next)
  }
  socket.end()
  return replies
}

describe('examples/mail', () => {
  it('delivers to mbox, adds a Message-ID when missing, rejects other domains; the helper probes', async () => {
    const sent = await sendMail({
      port,
      from: 'x@example.net',
      to: ['Alice@example.org'],
      subject: 's1',
      text: 'From the start\nbody\n',
    })
    expect(sent.response).toMatch(/^250 /)
    const replies = await rawSmtp([
      'EHLO test',
      'MAIL FROM:<raw@example.net>',
      'RCPT TO:<nobody@elsewhere.org>',
      'RCPT TO:<alice@example.org>',
      'DATA',
      'Subject: raw\r\n\r\nno id here\r\n.',
      'QUIT',
    ])
    expect(replies.map((r) => r.slice(0, 3))).toEqual([
      '220',
      '250',
      '250',
      '550',
      '250',
      '354',
      '250',
      '221',
    ])
    const messages = parseMbox(await mailbox(join(dir, 'state'), 'alice'))
    expect(messages).toHaveLength(2)
    expect(messages[0]!.envelope).toMatch(/^x@example\.net \w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}$/)
    expect(messages[0]!.text).toContain('\n\nFrom the start\nbody\n') // quoted on disk, unquoted by the parser
    expect(await mailbox(join(dir, 'state'), 'alice')).toContain('\n>From the start\n')
    expect(headerValue(messages[1]!.text, 'Message-ID')).toMatch(/^<[0-9a-f-]+@example\.org>$/)
    expect(headerValue(messages[1]!.text, 'Subject')).toBe('raw')

    expect((await driver.helper('probe', [])).code).toBe(0)
    expect((await driver.helper('quiesce', [])).code).toBe(64)
  })

  it('serialises concurrent deliveries to one mailbox', async () => {
    const count = 40
    await Promise.all(
      Array.from({ length: count }, (_, i) =>
        sendMail({
          port,
          from: 'c@example.net',
          to: ['bob@example.org'],
          subject: `c-${i}`,
          text: `${'line\n'.repeat(50)}`,
        }),
      ),
    )
    const messages = parseMbox(await mailbox(join(dir, 'state'), 'bob'))
    expect(messages).toHaveLength(count)
    expect(new Set(messages.map((m) => headerValue(m.text, 'Subject'))).size).toBe(count)
    for (const message of messages) expect(message.text.endsWith(`${'line\n'.repeat(50)}`)).toBe(true)
  })

  it('a capture while mail arrives restores with every message acknowledged before it, no torn mbox', async () => {
    const pool = createCodecPool({ threads: 1 })
    const store = await SnapshotStore.open(join(dir, 'store'), pool)
    const engine = new SnapshotEngine({ store, node: 'cd'.repeat(32) })
    const acked_at = new Map<number, number>()
    let next = 0
    let sending = true
    const sender = async (box: string) => {
      for (let i = 0; sending && i < 10_000; i++) {
        const n = next++
        await sendMail({
          port,
          from: 's@example.net',
          to: [`${box}@example.org`],
          subject: `m-${n}`,
          text: `mail ${n}\n`,
        })
        acked_at.set(n, performance.now())
      }
    }
    const senders = ['carol', 'dave', 'carol', 'erin'].map(sender)
    try {
      for (let round = 0; round < 6; round++) {
        // Let a few more messages be acknowledged first (an event would do, but acks come every few ms).
        const target = acked_at.size + 5
        for (let i = 0; i < 1000 && acked_at.size < target; i++) await new Promise((ok) => setTimeout(ok, 10))
        const started = performance.now()
        const before = [...acked_at].filter(([, at]) => at < started).map(([n]) => n)
        const capture = await driver.capture()
        expect(capture.pause_ms).toBeGreaterThan(0)
        let id: string
        try {
          id = (await engine.take(capture.parts, { term: 1 })).manifest.id
        } finally {
          await capture.release()
        }
        const restored = join(dir, `restored-${round}`)
        await store.restore(id, directoryImageWriter(restored, { durable: false }))
        const found = new Set<number>()
        for (const box of await readdir(join(restored, 'mail'))) {
          for (const message of parseMbox(await mailbox(restored, box))) {
            expect(headerValue(message.text, 'Message-ID')).toBeTruthy()
            const subject = headerValue(message.text, 'Subject')
            if (subject?.startsWith('m-')) found.add(Number(subject.slice(2)))
          }
        }
        const missing = before.filter((n) => !found.has(n))
        expect(missing).toEqual([])
        expect(before.length).toBeGreaterThan(0)
      }
    } finally {
      sending = false
      await Promise.all(senders)
      await pool.close()
    }
  })

  it('a killed mail server is an exited event; restarted in place it keeps its mail and answers', async () => {
    const exited = nextEvent(driver, 'exited')
    process.kill(driver.pid!, 'SIGKILL')
    expect((await exited).signal).toBe('SIGKILL')
    expect((await driver.helper('probe', [])).code).toBe(1)
    const answering = nextEvent(driver, 'answering', 20_000)
    await driver.start()
    await answering
    expect(parseMbox(await mailbox(join(dir, 'state'), 'bob'))).toHaveLength(40)
  })
})
