import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { parse, stringify } from 'yaml'
import { writeFileAtomic } from '../../lib/atomic-write.ts'
import { initNode } from '../../src/config/init-node.ts'
import { encodeInvite } from '../../src/config/invite.ts'
import { LocalNode } from '../../src/demo/local-federation.ts'
import { nodePaths } from '../../src/runtime/paths.ts'
import { requireTools } from '../system/requirements.ts'
import { type Lab, startLab } from './lab.ts'

const ROOT = new URL('../..', import.meta.url).pathname
const VIP = '10.77.0.100'
const DOOR_PORT = 25
const SERVICE_PORT = 2525
const BOOTSTRAP_PORT = 49737
const EVENT_TIMEOUT_MS = 120_000

let lab: Lab | null = null
let dir = ''
const nodes: LocalNode[] = []
afterAll(async () => {
  for (const node of nodes) {
    node.signal('SIGKILL')
    await node.waitExit(10_000).catch(() => {})
  }
  await lab?.close()
  if (dir) await rm(dir, { recursive: true, force: true })
})

/** Node i of the lab (host i, interface lab{i}): mail example, front door on every address, the VIP. */
async function writeNode(
  lab: Lab,
  i: number,
  secret: string | null,
): Promise<{ path: string; secret: string }> {
  const data = join(dir, `n${i}`)
  await mkdir(data, { recursive: true })
  const bootstrap = [0, 1].map((k) => `${lab.hosts[k]!.address}:${BOOTSTRAP_PORT}`)
  await initNode({
    data,
    name: `n${i}`,
    priority: 20 - i * 10,
    federation: 'viplab',
    host: lab.hosts[i]!.address,
    serve_bootstrap_port: BOOTSTRAP_PORT,
    ...(secret !== null ? { invite: encodeInvite({ name: 'viplab', secret, bootstrap }) } : {}),
  })
  const path = nodePaths(data).config
  const config = parse(await readFile(path, 'utf8')) as Record<string, Record<string, unknown>>
  config['federation']!['bootstrap'] = bootstrap
  config['service'] = { dir: join(ROOT, 'examples', 'mail'), port: SERVICE_PORT }
  config['front_door'] = {
    bind: '0.0.0.0',
    ports: { smtp: DOOR_PORT },
    vip: { address: `${VIP}/24`, interface: `lab${i}` },
    dns: { name: 'mail.viplab.test', port: 53, mdns: true },
  }
  await writeFileAtomic(path, stringify(config), { mode: 0o600 })
  return { path, secret: String(config['federation']!['secret']) }
}

const hasVip = async (i: number) =>
  (await lab!.exec(i, ['ip', '-o', '-4', 'addr', 'show', 'dev', `lab${i}`])).stdout.includes(` ${VIP}/`)
const macOf = async (i: number) =>
  /link\/ether ([0-9a-f:]{17})/.exec(
    (await lab!.exec(i, ['ip', '-o', 'link', 'show', `lab${i}`])).stdout,
  )![1]!
/** The client's neighbour entry for the VIP: the MAC it sends the VIP's packets to (null: none). */
const clientNeighbour = async () =>
  /lladdr ([0-9a-f:]{17})/.exec(
    (await lab!.exec(2, ['ip', 'neigh', 'show', VIP, 'dev', 'lab2'])).stdout,
  )?.[1] ?? null
/** The SMTP greeting a client on host 2 reads from the VIP's front door (bash's /dev/tcp, 20 s bound). */
const greeting = async () =>
  (
    await lab!.exec(2, [
      'timeout',
      '20',
      'bash',
      '-c',
      `exec 3<>/dev/tcp/${VIP}/${DOOR_PORT}; IFS= read -r line <&3; printf '%s' "$line"`,
    ])
  ).stdout

/**
 * The addresses in the first mDNS answer for mail.local that the client (host 2) gets, asked on the
 * group by multicast-dns (the querier side of the library, from the client's LAN address).
 */
const mdnsAsk = async (): Promise<string[]> => {
  const script = `
    const m = require('multicast-dns')({ bind: '0.0.0.0', interface: ${JSON.stringify(lab!.hosts[2]!.address)} })
    const bound = setTimeout(() => process.exit(3), 15000)
    m.on('response', (p) => {
      const a = p.answers.filter((r) => r.name === 'mail.local' && r.type === 'A').map((r) => r.data)
      if (a.length > 0) { process.stdout.write(JSON.stringify(a)); clearTimeout(bound); m.destroy() }
    })
    m.on('ready', () => m.query('mail.local', 'A'))`
  const { stdout } = await lab!.exec(2, ['bash', '-c', `cd ${ROOT} && ${process.execPath} -e "$0"`, script])
  return JSON.parse(stdout) as string[]
}

/** Polls a fact of the lab (no event exists for a neighbour entry changing), bounded in count and time. */
async function until<T>(what: string, probe: () => Promise<T | null>, timeout_ms = 10_000): Promise<T> {
  const deadline = Date.now() + timeout_ms
  for (let i = 0; i < 1000 && Date.now() < deadline; i++) {
    const value = await probe()
    if (value !== null) return value
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  throw new Error(`${what}: not within ${timeout_ms} ms`)
}

const event = (name: string, reason?: string) => (r: Record<string, unknown>) =>
  r['event'] === name && (reason === undefined || r['reason'] === reason)

describe('virtual IP on a LAN (network namespaces on a bridge)', () => {
  it('the server holds the VIP and announces it, mDNS names it first; after SIGKILL the new server takes it over, and the old one restarts without it', async () => {
    requireTools('arping', 'ip')
    lab = await startLab(3) // hosts 0 and 1 run nodes, host 2 is the client
    dir = await mkdtemp(join(tmpdir(), 'sustain-vip-'))
    const first = await writeNode(lab, 0, null)
    const second = await writeNode(lab, 1, first.secret)
    const launcher = (i: number) => ['nsenter', '-t', String(lab!.hosts[i]!.pid), '-n']
    for (const [i, written] of [first, second].entries())
      nodes.push(
        new LocalNode(
          i,
          `n${i}`,
          join(dir, `n${i}`),
          SERVICE_PORT,
          [written.path, '--json'],
          null,
          launcher(i),
        ),
      )
    const [n0, n1] = nodes as [LocalNode, LocalNode]

    // A VIP that a crash left on n1 (not the server): n1 removes it when it starts.
    await lab.exec(1, ['ip', 'addr', 'add', `${VIP}/24`, 'dev', 'lab1'])
    n0.start()
    await n0.waitFor(event('vip_taken'), EVENT_TIMEOUT_MS, 'n0 takes the VIP')
    n1.start()
    await n1.waitFor(event('node_started'), EVENT_TIMEOUT_MS, 'n1 starts')
    expect(await hasVip(1)).toBe(false)
    expect(n1.records.some(event('vip_released', 'start'))).toBe(true)
    expect(await hasVip(0)).toBe(true)

    // The client reaches the service through the VIP, on n0's MAC.
    expect(await greeting()).toMatch(/^220 .*Sustain example mail service/)
    const [mac0, mac1] = [await macOf(0), await macOf(1)]
    expect(mac0).not.toBe(mac1)
    expect(await clientNeighbour()).toBe(mac0)
    // mDNS on the LAN: mail.local names the front doors, the server's first.
    expect((await mdnsAsk())[0]).toBe(lab.hosts[0]!.address)

    // The server's machine dies: its node and service SIGKILLed and its link down (a dead machine
    // answers no ARP; its kernel here would otherwise keep answering for the address it still has).
    const killed_ms = Date.now()
    n0.signal('SIGKILL')
    await n0.waitExit(10_000)
    await lab.exec(0, ['ip', 'link', 'set', 'lab0', 'down'])
    await n1.waitFor(event('vip_taken'), EVENT_TIMEOUT_MS, 'n1 takes the VIP')
    expect(await hasVip(1)).toBe(true)
    // The gratuitous ARP moves the client's entry before the client sends anything.
    await until('the client neighbour entry moves to n1', async () =>
      (await clientNeighbour()) === mac1 ? true : null,
    )
    // A figure to read beside the load, not asserted (benchmarks measure speed).
    process.stderr.write(
      `VIP takeover: SIGKILL to the client's neighbour entry on n1: ${Date.now() - killed_ms} ms\n`,
    )
    expect(await greeting()).toMatch(/^220 .*Sustain example mail service/)
    expect(await mdnsAsk()).toEqual([lab.hosts[1]!.address])

    // The old server comes back (its stale VIP still on lab0): it does not hold the address.
    expect(await hasVip(0)).toBe(true)
    await lab.exec(0, ['ip', 'link', 'set', 'lab0', 'up'])
    const restarts = n0.records.length
    n0.start()
    await n0.waitFor(
      (r) => n0.records.indexOf(r) >= restarts && event('node_started')(r),
      EVENT_TIMEOUT_MS,
      'n0 restarts',
    )
    expect(await hasVip(0)).toBe(false)
    expect(await hasVip(1)).toBe(true)
    expect(await greeting()).toMatch(/^220 .*Sustain example mail service/)
    expect(await clientNeighbour()).toBe(mac1)
  })
})
