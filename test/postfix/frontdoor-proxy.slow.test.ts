import { once } from 'node:events'
import { access, chmod, mkdtemp, readFile, rm } from 'node:fs/promises'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createLogger } from '../../lib/log.ts'
import { type LocalTestnet, startTestnet } from '../../overlay/testnet.ts'
import {
  createProcessDriver,
  loadServiceManifest,
  type ProcessDriver,
} from '../../src/drivers/process/index.ts'
import { freePort } from '../../src/util/free-port.ts'
import { nextEvent } from '../drivers/fixtures.ts'
import { FrontDoorPair } from '../frontdoor/pair.ts'

const SERVICE_DIR = resolve(import.meta.dirname, '../../examples/postfix')

/** One SMTP transaction over a socket from `localAddress`; resolves with the reply to the end of DATA. */
async function smtpFrom(localAddress: string, port: number, subject: string): Promise<string> {
  const socket = net.connect({ host: '127.0.0.1', port, localAddress })
  socket.setEncoding('utf8')
  let pending = ''
  const reply = async (): Promise<string> => {
    while (!/^\d{3} [^\n]*\r?\n/m.test(pending)) {
      const [chunk] = (await once(socket, 'data')) as [string]
      pending += chunk
    }
    const line = pending.split(/\r?\n/).find((l) => /^\d{3} /.test(l))!
    pending = ''
    return line
  }
  try {
    await reply() // 220 banner
    for (const command of [
      'EHLO client.test',
      'MAIL FROM:<a@example.net>',
      'RCPT TO:<alice@example.org>',
      'DATA',
    ]) {
      socket.write(`${command}\r\n`)
      await reply()
    }
    socket.write(`Subject: ${subject}\r\n\r\nvia the front door\r\n.\r\n`)
    const done = await reply()
    socket.write('QUIT\r\n')
    return done
  } finally {
    socket.end()
  }
}

let dir: string
let testnet: LocalTestnet
let driver: ProcessDriver | null = null
let pair: FrontDoorPair | null = null

beforeAll(async () => {
  await access('/usr/sbin/postfix').catch(() => {
    throw new Error('postfix is not installed: see examples/postfix/README.md')
  })
  dir = await mkdtemp(join(tmpdir(), 'sustain-postfix-proxy-'))
  await chmod(dir, 0o755)
  testnet = await startTestnet(5)
})
afterAll(async () => {
  await pair?.stop()
  await driver?.close()
  await testnet?.destroy()
  await rm(dir, { recursive: true, force: true })
})

describe('Postfix behind the front door (PROXY protocol v2)', () => {
  it("logs the client's address, not the forwarding node's", async () => {
    const [port, proxy_port] = [await freePort(), await freePort()]
    const state_dir = join(dir, 'postfix')
    driver = createProcessDriver({
      service_dir: SERVICE_DIR,
      state_dir,
      port,
      port_env: { SUSTAIN_PORT_SMTP: String(proxy_port) },
      log: createLogger({ level: 'silent' }),
      manifest: await loadServiceManifest(SERVICE_DIR),
    })
    const answering = nextEvent(driver, 'answering', 30_000)
    await driver.start()
    await answering
    pair = await FrontDoorPair.start(testnet, proxy_port, { proxy_protocol: true })
    // A client on its own loopback address reaches Postfix through the other member's front door.
    expect(await smtpFrom('127.0.0.77', pair.origin.port.listen_port, 'proxied')).toMatch(/^250 /)
    const log = await readFile(join(state_dir, 'postfix', 'data', 'maillog'), 'utf8')
    expect(log).toMatch(/connect from [^\n]*\[127\.0\.0\.77\]/)
    expect(log).not.toMatch(/lost connection|improper command pipelining|haproxy.*(error|warning)/i)
  })
})
