import { createReadStream, createWriteStream } from 'node:fs'
import { readdir } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { finished } from 'node:stream/promises'
import { afterEach, describe, expect, it } from 'vitest'
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
import { tempDir } from './fixtures.ts'
import { readMboxWithPython } from './python-mbox.ts'

const SERVICE_DIR = resolve(import.meta.dirname, '../../examples/mail')

const drivers: ProcessDriver[] = []
afterEach(async () => {
  for (const driver of drivers.splice(0)) await driver.close()
})

async function startMail(state_dir: string): Promise<{ driver: ProcessDriver; port: number }> {
  const port = await freePort()
  const driver = createProcessDriver({
    service_dir: SERVICE_DIR,
    state_dir,
    port,
    log: createLogger({ level: 'silent' }),
    manifest: await loadServiceManifest(SERVICE_DIR),
  })
  drivers.push(driver)
  const answering = nextEvent(driver, 'answering', 20_000)
  await driver.start()
  await answering
  return { driver, port }
}

const send = (port: number, subject: string, to = 'alice@example.org') =>
  sendMail({ port, from: 'x@example.net', to: [to], subject, text: `${subject}\nFrom the body\n` })

describe('examples/mail helper: archive on the loser, merge into the running winner', () => {
  it('every acknowledged message ends up in the winner exactly once, mail arriving during the merge too', async () => {
    const dir = await tempDir()
    const winner = await startMail(join(dir, 'winner'))
    const loser = await startMail(join(dir, 'loser'))
    const fork_ms = Date.now() - 1000
    const acked: string[] = []
    for (let i = 0; i < 20; i++) {
      await send(winner.port, `w-${i}`)
      await send(loser.port, `l-${i}`, i % 2 ? 'alice@example.org' : 'bob@example.org')
      acked.push(`w-${i}`, `l-${i}`)
    }
    const env = mergeEnv({ fork_id: 'f', fork_time_ms: fork_ms, peer: 'ab'.repeat(32), peer_name: 'loser' })
    await loser.driver.stop('merge') // as the runtime does: nothing new is acknowledged after the cut
    const archive = join(dir, 'archive')
    const out = createWriteStream(archive)
    const archived = await loser.driver.helper('archive', sinceArgs(fork_ms), { stdout: out, env })
    out.end()
    await finished(out)
    expect(archived.stderr).toMatch(/archive: 20 messages/)
    expect(archived.code).toBe(0)

    let sending = true
    const during = (async () => {
      for (let i = 0; sending && i < 200; i++) {
        await send(winner.port, `d-${i}`)
        acked.push(`d-${i}`)
      }
    })()
    const merge = () =>
      winner.driver.helper('merge', sinceArgs(fork_ms), { stdin: createReadStream(archive), env })
    const first = await merge()
    const second = await merge() // a retry after a lost answer: nothing twice
    sending = false
    await during
    expect([first.code, first.stderr]).toEqual([0, expect.stringMatching(/merge: 20 added/)])
    expect([second.code, second.stderr]).toEqual([
      0,
      expect.stringMatching(/merge: 0 added, 20 already present/),
    ])

    const found: string[] = []
    const spool = join(dir, 'winner', 'mail')
    for (const box of await readdir(spool)) {
      for (const message of await readMboxWithPython(join(spool, box))) found.push(message.subject ?? '')
    }
    expect(found.sort()).toEqual([...acked].sort())
    expect((await readdir(spool)).sort()).toEqual(['alice', 'bob'])
  })
})
