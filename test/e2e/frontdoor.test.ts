import dgram from 'node:dgram'
import { once } from 'node:events'
import dnsPacket from 'dns-packet'
import { describe, expect, it } from 'vitest'
import { sendMail } from '../../examples/mail/smtp-client.ts'
import type { LocalFederation, LocalNode } from '../../src/demo/local-federation.ts'
import { MailLoop } from '../../src/demo/mail-loop.ts'
import { localFederations } from './fixtures.ts'

const startFederation = localFederations()

function door(node: LocalNode): NonNullable<LocalNode['front_door']> {
  if (!node.front_door) throw new Error(`${node.name} has no front door`)
  return node.front_door
}

async function mailTo(node: LocalNode, subject: string): Promise<string> {
  const sent = await sendMail({
    host: door(node).host,
    port: door(node).port,
    from: 'client@example.org',
    to: ['alice@example.org'],
    subject,
    text: `${subject}\n`,
  })
  return sent.response
}

/** A node that does not serve (the one to keep as the client's fixed address). */
async function candidate(fed: LocalFederation, server: LocalNode): Promise<LocalNode> {
  return fed.nodes.filter((n) => n !== server).at(-1)!
}

/** The A records a node's DNS answer gives for `name` (asked over UDP). */
async function resolve(node: LocalNode, name: string): Promise<string[]> {
  const socket = dgram.createSocket('udp4')
  try {
    socket.send(
      dnsPacket.encode({ type: 'query', id: 42, questions: [{ name, type: 'A' }] }),
      door(node).dns_port!,
      door(node).host,
    )
    const [reply] = (await once(socket, 'message')) as [Buffer]
    return (dnsPacket.decode(reply).answers ?? []).map((a) => String((a as { data: unknown }).data))
  } finally {
    socket.close()
  }
}

describe('front door end to end (real node processes, real mail service, loopback testnet)', () => {
  it('a client of any node, server or not, gets SMTP service; the mail lands on the server', async () => {
    const fed = await startFederation({
      nodes: 3,
      snapshot_interval_ms: 1000,
      front_door: { dns_name: 'mail.demo.test' },
    })
    const server = await fed.server(60_000)
    const other = await candidate(fed, server)
    // Any node's DNS answer names every front door, the server's first.
    const deadline = Date.now() + 20_000
    let addresses: string[] = []
    while (Date.now() < deadline && addresses.length < 3) {
      addresses = await resolve(other, 'mail.demo.test')
      if (addresses.length < 3) await new Promise((r) => setTimeout(r, 200))
    }
    expect(addresses[0]).toBe(door(server).host)
    expect([...addresses].sort()).toEqual(fed.nodes.map((n) => door(n).host).sort())
    expect(await mailTo(other, 'via-candidate')).toMatch(/^250/)
    expect(await mailTo(server, 'via-server')).toMatch(/^250/)
    const mailbox = await server.mailbox('alice')
    expect(mailbox).toMatch(/^Subject: via-candidate$/m)
    expect(mailbox).toMatch(/^Subject: via-server$/m)
    const status = await other.status()
    expect(status?.front_door?.forwarded_remote).toBeGreaterThanOrEqual(1)
    expect((await server.status())?.front_door?.streams_accepted).toBeGreaterThanOrEqual(1)
  })

  it('SIGKILL of the server: a client that keeps sending to one surviving front door is held, not refused', async () => {
    const fed = await startFederation({ nodes: 3, snapshot_interval_ms: 500, front_door: {} })
    const server = await fed.server(60_000)
    const other = await candidate(fed, server)
    const { host, port } = door(other)
    const client = new MailLoop(host, port, 'kill')
    await other.waitFor(() => client.record.acked.size >= 10, 30_000, 'ten mails through the front door')
    const killed_ms = Date.now()
    server.signal('SIGKILL')
    const survivors = fed.nodes.filter((n) => n !== server)
    await fed.server(60_000)
    const deadline = Date.now() + 30_000
    while (
      Date.now() < deadline &&
      [...client.record.acked.values()].filter((t) => t > killed_ms).length < 10
    ) {
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
    const seen = await client.stop()
    const after = [...seen.acked.values()].filter((t) => t > killed_ms)
    console.log(
      `front door outage after SIGKILL: ${seen.outage_ms} ms; refused ${seen.refused}, failed ${seen.failed}, ` +
        `slowest transaction ${seen.slowest_ms} ms; acked ${seen.acked.size}`,
    )
    expect(after.length).toBeGreaterThanOrEqual(10)
    expect(seen.refused).toBe(0)
    // The longest gap stays within the hold bound (10 s): held and then forwarded, never timed out.
    expect(seen.outage_ms).toBeLessThan(10_000)
    const status = await other.status()
    expect(status?.front_door?.expired).toBe(0)
    expect(status?.front_door?.refused).toBe(0)
    expect(survivors.some((n) => n.running)).toBe(true)
  })
})
