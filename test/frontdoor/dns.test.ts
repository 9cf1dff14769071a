import { randomBytes } from 'node:crypto'
import dgram from 'node:dgram'
import { once } from 'node:events'
import net from 'node:net'
import dnsPacket, { type Packet } from 'dns-packet'
import { afterEach, describe, expect, it } from 'vitest'
import { createLogger } from '../../lib/log.ts'
import { answerQuery, type Zone } from '../../src/frontdoor/dns/answer.ts'
import { DnsServer } from '../../src/frontdoor/dns/server.ts'
import { freePort } from '../../src/util/free-port.ts'

const zone: Zone = {
  name: 'mail.example.test',
  ttl_s: 5,
  addresses: ['127.0.1.2', '127.0.1.1', '::1'],
  serial: 7,
}

function query(name: string, type: string, id = 1): Buffer {
  return dnsPacket.encode({
    type: 'query',
    id,
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ name, type: type as 'A' }],
  })
}

function ask(name: string, type: string): Packet {
  return dnsPacket.decode(answerQuery(query(name, type), zone, 'udp')!)
}

const rcode = (p: Packet) => (p.flags ?? 0) & 0xf

async function udpAsk(port: number, message: Buffer, timeout_ms = 1000): Promise<Buffer | null> {
  const socket = dgram.createSocket('udp4')
  try {
    socket.send(message, port, '127.0.0.1')
    const reply = await Promise.race([
      once(socket, 'message').then(([m]) => m as Buffer),
      new Promise<null>((resolve) => setTimeout(() => resolve(null), timeout_ms)),
    ])
    return reply
  } finally {
    socket.close()
  }
}

describe('DNS answers for the service name', () => {
  it('A: the front doors, the server first, TTL at most 5 s, authoritative', () => {
    const reply = ask('MAIL.example.test.', 'A')
    expect(reply.type).toBe('response')
    expect(rcode(reply)).toBe(0)
    expect((reply.flags ?? 0) & dnsPacket.AUTHORITATIVE_ANSWER).toBeTruthy()
    expect(reply.answers?.map((a) => (a as { data: string }).data)).toEqual(['127.0.1.2', '127.0.1.1'])
    for (const a of reply.answers ?? []) expect((a as { ttl?: number }).ttl).toBeLessThanOrEqual(5)
    expect(ask('mail.example.test', 'AAAA').answers?.map((a) => (a as { data: string }).data)).toEqual([
      '::1',
    ])
  })

  it('SOA and NS (with glue) so a parent zone can delegate; NXDOMAIN below the name; NODATA for MX', () => {
    const soa = ask('mail.example.test', 'SOA')
    expect(soa.answers?.[0]).toMatchObject({ type: 'SOA', data: { serial: 7, minimum: 5 } })
    const ns = ask('mail.example.test', 'NS')
    expect(ns.answers?.[0]).toMatchObject({ type: 'NS', data: 'mail.example.test' })
    expect(ns.additionals?.length).toBe(3)
    const below = ask('x.mail.example.test', 'A')
    expect(rcode(below)).toBe(3)
    expect(below.authorities?.[0]?.type).toBe('SOA')
    const mx = ask('mail.example.test', 'MX')
    expect(rcode(mx)).toBe(0)
    expect(mx.answers).toEqual([])
    expect(mx.authorities?.[0]?.type).toBe('SOA')
  })

  it('REFUSED for names that are not ours', () => {
    for (const name of ['example.test', 'mail.example.test.evil', 'google.com', 'ail.example.test']) {
      const reply = ask(name, 'A')
      expect(rcode(reply)).toBe(5)
      expect(reply.answers).toEqual([])
    }
  })

  it('10,000 random packets: each dropped or answered with a well-formed packet, never a throw', () => {
    let answered = 0
    for (let i = 0; i < 10_000; i++) {
      // Half pure noise, half a real query with random bytes flipped (reaches deeper into the decoder).
      const packet =
        i % 2 === 0 ? randomBytes(1 + (i % 600)) : Buffer.from(query('mail.example.test', 'A', i & 0xffff))
      if (i % 2 === 1)
        for (let f = 0; f < 1 + (i % 5); f++) packet[(i * 7 + f * 13) % packet.length] = (i * 31 + f) & 0xff
      const reply = answerQuery(packet, zone, 'udp')
      if (reply === null) continue
      answered++
      expect(reply.byteLength).toBeLessThanOrEqual(512)
      expect(dnsPacket.decode(reply).type).toBe('response')
    }
    expect(answered).toBeGreaterThan(0)
  })
})

describe('DNS server (UDP and TCP)', () => {
  let server: DnsServer | null = null
  afterEach(async () => {
    await server?.close()
    server = null
  })

  it('answers over UDP and TCP; survives 10,000 random UDP packets and garbage on TCP', async () => {
    const port = await freePort()
    server = new DnsServer({
      host: '127.0.0.1',
      port,
      zone: () => zone,
      log: createLogger({ name: 'dns', level: 'silent' }),
    })
    await server.start()
    const udp = dnsPacket.decode((await udpAsk(port, query('mail.example.test', 'A')))!)
    expect(udp.answers?.[0]).toMatchObject({ type: 'A', data: '127.0.1.2' })

    const noise = dgram.createSocket('udp4')
    for (let i = 0; i < 10_000; i++) noise.send(randomBytes(1 + (i % 300)), port, '127.0.0.1')
    noise.close()
    const after = await udpAsk(port, query('google.com', 'A', 9))
    expect(rcode(dnsPacket.decode(after!))).toBe(5)

    const tcp = net.connect(port, '127.0.0.1')
    await once(tcp, 'connect')
    tcp.write(
      dnsPacket.streamEncode({ type: 'query', id: 3, questions: [{ name: 'mail.example.test', type: 'A' }] }),
    )
    const [bytes] = (await once(tcp, 'data')) as [Buffer]
    expect(dnsPacket.streamDecode(bytes).answers?.length).toBe(2)
    // A malformed message closes that connection only.
    tcp.write(Buffer.concat([Buffer.from([0, 4]), randomBytes(4)]))
    await once(tcp, 'close')
    const again = dnsPacket.decode((await udpAsk(port, query('mail.example.test', 'SOA')))!)
    expect(again.answers?.[0]?.type).toBe('SOA')
    expect(server.counters.dropped).toBeGreaterThan(0)
  })
})
