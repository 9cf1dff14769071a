import { randomBytes } from 'node:crypto'
import dgram from 'node:dgram'
import { once } from 'node:events'
import dnsPacket, { type Packet } from 'dns-packet'
import makeMdns from 'multicast-dns'
import { afterEach, describe, expect, it } from 'vitest'
import { createLogger } from '../../lib/log.ts'
import type { Zone } from '../../src/frontdoor/dns/answer.ts'
import { answerMdns, MdnsResponder, mdnsName } from '../../src/frontdoor/dns/mdns.ts'

const zone: Zone = { name: 'mail.local', ttl_s: 5, addresses: ['127.0.1.2', '127.0.1.1', '::1'], serial: 3 }
const q = (name: string, type: string, extra: Record<string, unknown> = {}): Packet => ({
  type: 'query',
  id: 0,
  questions: [{ name, type: type as 'A', ...extra }],
})

describe('mDNS answers (RFC 6762)', () => {
  it('names the service NAME.local', () => {
    expect(mdnsName('Mail.Example.org.')).toBe('mail.local')
    expect(mdnsName('sustain-mail.local')).toBe('sustain-mail.local')
  })

  it('answers A with the front doors, server first, TTL <= 5 s, cache-flush set, to the group', () => {
    const reply = answerMdns(q('MAIL.local', 'A'), zone, 5353)!
    expect(reply.unicast).toBe(false)
    expect(reply.packet.id).toBe(0)
    expect(reply.packet.answers.map((a) => [a.type, (a as { data: string }).data])).toEqual([
      ['A', '127.0.1.2'],
      ['A', '127.0.1.1'],
    ])
    for (const a of reply.packet.answers) {
      expect((a as { ttl?: number }).ttl).toBeLessThanOrEqual(5)
      expect((a as { flush?: boolean }).flush).toBe(true)
    }
    expect(answerMdns(q('mail.local', 'AAAA'), zone, 5353)!.packet.answers).toHaveLength(1)
    expect(answerMdns(q('mail.local', 'ANY'), zone, 5353)!.packet.answers).toHaveLength(3)
  })

  it('answers unicast to a QU question and to a legacy querier (its id and question, no cache-flush)', () => {
    expect(answerMdns(q('mail.local', 'A', { qu: true }), zone, 5353)!.unicast).toBe(true)
    const legacy = answerMdns({ ...q('mail.local', 'A'), id: 4242 }, zone, 40000)!
    expect(legacy.unicast).toBe(true)
    expect(legacy.packet.id).toBe(4242)
    expect(legacy.packet.questions?.[0]?.name).toBe('mail.local')
    expect(legacy.packet.answers.every((a) => (a as { flush?: boolean }).flush === false)).toBe(true)
  })

  it('stays silent for other names, types it has no record of, responses and other opcodes', () => {
    expect(answerMdns(q('other.local', 'A'), zone, 5353)).toBeNull()
    expect(answerMdns(q('x.mail.local', 'A'), zone, 5353)).toBeNull()
    expect(answerMdns(q('mail.local', 'MX'), zone, 5353)).toBeNull()
    expect(answerMdns({ ...q('mail.local', 'A'), type: 'response' }, zone, 5353)).toBeNull()
    expect(answerMdns({ ...q('mail.local', 'A'), flags: 2 << 11 }, zone, 5353)).toBeNull()
    expect(answerMdns({ ...q('mail.local', 'A'), questions: [] }, zone, 5353)).toBeNull()
  })
})

/** A free UDP port (multicast-dns binds nothing for port 0). */
async function freeUdpPort(): Promise<number> {
  const socket = dgram.createSocket('udp4')
  socket.bind(0, '127.0.0.1')
  await once(socket, 'listening')
  const { port } = socket.address()
  socket.close()
  return port
}

describe('MdnsResponder on loopback multicast', () => {
  const closers: (() => unknown)[] = []
  afterEach(async () => {
    for (const close of closers.splice(0)) await close()
  })

  async function start() {
    const port = await freeUdpPort()
    const responder = new MdnsResponder({
      zone: () => zone,
      interface: '127.0.0.1',
      port,
      log: createLogger({ level: 'silent' }),
    })
    await responder.start()
    closers.push(() => responder.close())
    const legacy = dgram.createSocket('udp4')
    legacy.bind(0, '127.0.0.1')
    await once(legacy, 'listening')
    closers.push(() => legacy.close())
    /** A legacy unicast query; resolves with the next datagram this socket gets. */
    const ask = async (name: string, id: number) => {
      const reply = once(legacy, 'message')
      legacy.send(dnsPacket.encode({ ...q(name, 'A'), id }), port, '127.0.0.1')
      return dnsPacket.decode((await reply)[0] as Buffer)
    }
    return { port, responder, legacy, ask }
  }

  it('a querier on the group gets the answer', async () => {
    const { port } = await start()
    const querier = makeMdns({ port, bind: '0.0.0.0', interface: '127.0.0.1' })
    closers.push(() => new Promise<void>((resolve) => querier.destroy(() => resolve())))
    await once(querier, 'ready')
    const answered = new Promise<Packet>((resolve) =>
      querier.on('response', (p: Packet) => {
        if (p.answers?.some((a) => a.name === 'mail.local')) resolve(p)
      }),
    )
    querier.query('mail.local', 'A')
    const response = await answered
    expect(response.answers!.map((a) => (a as { data: string }).data)).toEqual(['127.0.1.2', '127.0.1.1'])
  })

  it('drops malformed packets and ignores other names, then answers as before', async () => {
    const { port, responder, legacy, ask } = await start()
    // Other names get nothing: the next datagram this socket gets answers the query sent after them.
    legacy.send(dnsPacket.encode({ ...q('other.local', 'A'), id: 1 }), port, '127.0.0.1')
    expect((await ask('mail.local', 2)).id).toBe(2)
    // 1,000 random packets in batches the socket buffer holds, each batch followed by a real query.
    for (let batch = 0; batch < 10; batch++) {
      for (let i = 0; i < 100; i++) legacy.send(randomBytes(1 + ((batch * 100 + i) % 512)), port, '127.0.0.1')
      const reply = await ask('mail.local', 100 + batch)
      expect(reply.id).toBe(100 + batch)
      expect(reply.answers).toHaveLength(2)
    }
    expect(responder.counters.dropped).toBeGreaterThan(900)
    expect(responder.counters.answered).toBe(11)
  })
})
