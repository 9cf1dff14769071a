import { createReadStream, createWriteStream } from 'node:fs'
import { chmod, mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { finished } from 'node:stream/promises'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { sendMail } from '../../examples/mail/smtp-client.ts'
import { mergeEnv, sinceArgs } from '../../helpers/protocol.ts'
import { createLogger } from '../../lib/log.ts'
import {
  createProcessDriver,
  loadServiceManifest,
  type ProcessDriver,
} from '../../src/drivers/process/index.ts'
import { freePort } from '../../src/util/free-port.ts'
import { nextEvent } from '../drivers/fixtures.ts'
import { readMboxWithPython } from '../helpers/python-mbox.ts'
import { requireTools } from '../system/requirements.ts'

const SERVICE_DIR = resolve(import.meta.dirname, '../../examples/postfix')

interface Instance {
  driver: ProcessDriver
  port: number
  state_dir: string
  spool: string
}

let dir: string
const instances: Instance[] = []

async function startPostfix(name: string): Promise<Instance> {
  const port = await freePort()
  const state_dir = join(dir, name)
  const driver = createProcessDriver({
    service_dir: SERVICE_DIR,
    state_dir,
    port,
    log: createLogger({ level: (process.env['POSTFIX_TEST_LOG'] as 'info' | undefined) ?? 'silent' }),
    manifest: await loadServiceManifest(SERVICE_DIR),
  })
  const instance = { driver, port, state_dir, spool: join(state_dir, 'spool') }
  instances.push(instance)
  const answering = nextEvent(driver, 'answering', 30_000)
  await driver.start()
  await answering
  return instance
}

/** Every message in the spool, read by Python's mailbox module: `mailbox/subject` strings. */
async function spoolContents(spool: string): Promise<string[]> {
  const found: string[] = []
  for (const box of (await readdir(spool)).filter((name) => !name.endsWith('.lock'))) {
    for (const message of await readMboxWithPython(join(spool, box))) found.push(`${box}/${message.subject}`)
  }
  return found.sort()
}

/** Postfix acknowledges once the message is queued; delivery to the mbox follows. Wait for it. */
async function waitDelivered(spool: string, expected: string[]): Promise<string[]> {
  let found: string[] = []
  for (let i = 0; i < 300; i++) {
    found = await spoolContents(spool)
    if (expected.every((e) => found.includes(e))) return found
    await new Promise((ok) => setTimeout(ok, 100))
  }
  return found
}

beforeAll(async () => {
  requireTools('postfix', 'python3') // examples/postfix/README.md
  dir = await mkdtemp(join(tmpdir(), 'sustain-postfix-'))
  await chmod(dir, 0o755) // Postfix's daemons and the virtual agent (not root) go through it
})
afterAll(async () => {
  for (const instance of instances) await instance.driver.close()
  await rm(dir, { recursive: true, force: true })
})

const send = (
  port: number,
  box: string,
  subject: string,
  extra: { message_id?: string; text?: string } = {},
) =>
  sendMail({
    port,
    from: 'sender@example.net',
    to: [`${box}@example.org`],
    subject,
    text: extra.text ?? `${subject}\nFrom the middle of a line at the start\n`,
    ...(extra.message_id ? { message_id: extra.message_id } : {}),
    timeout_ms: 10_000,
  })

describe('real Postfix under the process driver', () => {
  it('delivers to mbox files in its state directory; capture quiesces; archive + merge joins two servers exactly once', async () => {
    const winner = await startPostfix('winner')
    const loser = await startPostfix('loser')
    const fork_ms = Date.now() - 1000
    const acked: string[] = []
    for (let i = 0; i < 10; i++) {
      await send(winner.port, 'alice', `w-${i}`)
      acked.push(`alice/w-${i}`)
      const box = i % 2 ? 'alice' : 'bob'
      await send(loser.port, box, `l-${i}`)
      acked.push(`${box}/l-${i}`)
    }
    // The same message delivered on both sides (a client that retried on the other server).
    await send(winner.port, 'carol', 'both', { message_id: '<both@example.net>' })
    await send(loser.port, 'carol', 'both', { message_id: '<both@example.net>' })
    acked.push('carol/both')
    await expect(send(winner.port, 'nobody-here', 'x')).rejects.toThrow(/550|User unknown|rejected/i)

    expect(await waitDelivered(winner.spool, ['alice/w-9', 'carol/both'])).toEqual(
      [...Array.from({ length: 10 }, (_, i) => `alice/w-${i}`), 'carol/both'].sort(),
    )
    await waitDelivered(loser.spool, ['alice/l-9', 'bob/l-8', 'carol/both'])
    const alice = await stat(join(winner.spool, 'alice'))
    expect([alice.uid, alice.mode & 0o777]).toEqual([65534, 0o600]) // delivered by the virtual agent
    const raw = await readFile(join(winner.spool, 'alice'), 'utf8')
    expect(raw).toContain('\n>From the middle of a line at the start\n') // Postfix quotes From_ lines

    // A capture runs quiesce (every mailbox's dotlock held) and resume (released).
    const capture = await winner.driver.capture()
    await capture.release()
    expect((await readdir(winner.spool)).filter((n) => n.endsWith('.lock'))).toEqual([])

    // Heal: the loser stops (nothing more is acknowledged there), archives; the winner merges while
    // it keeps receiving mail; the merge is run twice (a retry) and adds nothing the second time.
    await loser.driver.stop('merge')
    const env = mergeEnv({
      fork_id: 'fork',
      fork_time_ms: fork_ms,
      peer: 'cd'.repeat(32),
      peer_name: 'loser',
    })
    const archive = join(dir, 'archive')
    const out = createWriteStream(archive)
    const archived = await loser.driver.helper('archive', sinceArgs(fork_ms), { stdout: out, env })
    out.end()
    await finished(out)
    expect([archived.code, archived.stderr]).toEqual([0, expect.stringMatching(/archive: 11 messages/)])

    let sending = true
    const during = (async () => {
      for (let i = 0; sending && i < 100; i++) {
        await send(winner.port, 'dave', `d-${i}`)
        acked.push(`dave/d-${i}`)
      }
    })()
    const merge = () =>
      winner.driver.helper('merge', sinceArgs(fork_ms), { stdin: createReadStream(archive), env })
    const first = await merge()
    const second = await merge()
    sending = false
    await during
    expect([first.code, first.stderr]).toEqual([
      0,
      expect.stringMatching(/merge: 10 added, 1 already present/),
    ])
    expect([second.code, second.stderr]).toEqual([
      0,
      expect.stringMatching(/merge: 0 added, 11 already present/),
    ])

    const delivered = await waitDelivered(winner.spool, acked)
    expect(delivered).toEqual([...new Set(acked)].sort()) // every acknowledged message exactly once
    const merged = await stat(join(winner.spool, 'bob'))
    expect([merged.uid, merged.mode & 0o777]).toEqual([65534, 0o600]) // created by the merge, Postfix's owner

    // Postfix still delivers into the mailboxes the merge rewrote.
    await send(winner.port, 'alice', 'after-merge')
    expect(await waitDelivered(winner.spool, ['alice/after-merge'])).toContain('alice/after-merge')
  })
})
