import type { RemoteInfo } from 'node:dgram'
import type { Answer, Packet, Question } from 'dns-packet'
import makeMdns from 'multicast-dns'
import type { Logger } from '../../../lib/log.ts'
import { records, type Zone } from './answer.ts'

/** mDNS's group and port (RFC 6762). */
export const MDNS_GROUP = '224.0.0.251'
export const MDNS_PORT = 5353

/**
 * The `.local` name mDNS answers for a service named `name` in DNS: the name itself when it is in
 * `.local` already, else its first label (`mail.example.org` -> `mail.local`).
 */
export function mdnsName(name: string): string {
  const canonical = name.toLowerCase().replace(/\.$/, '')
  return canonical.endsWith('.local') ? canonical : `${canonical.split('.')[0]}.local`
}

/** What to send for one query, or null (mDNS answers only what it owns; it never refuses). */
export interface MdnsReply {
  packet: Packet & { answers: Answer[] }
  /** To the querier's address and port (QU questions, legacy unicast) rather than the group. */
  unicast: boolean
}

/**
 * The answer to an mDNS query (RFC 6762): A/AAAA/ANY for `zone.name` (a `.local` name) with the front
 * doors, server first, TTL zone.ttl_s. Unique records: the cache-flush bit is set, so a querier drops
 * what it cached from the previous server. A query from a port other than 5353 is a legacy unicast
 * query (6.7): answered to its sender with its id and question, no cache-flush bit. Other names, other
 * opcodes or rcodes, and responses get no answer.
 */
export function answerMdns(query: Packet, zone: Zone, from_port: number): MdnsReply | null {
  const flags = query.flags ?? 0
  if (query.type !== 'query' || ((flags >> 11) & 0xf) !== 0 || (flags & 0xf) !== 0) return null
  const ours = (query.questions ?? []).filter(
    (q: Question & { class?: string }) =>
      String(q.name ?? '')
        .toLowerCase()
        .replace(/\.$/, '') === zone.name &&
      (q.class === undefined || q.class === 'IN' || q.class === 'ANY'),
  )
  const legacy = from_port !== MDNS_PORT
  const answers: Answer[] = []
  for (const question of ours)
    for (const record of records(zone, String(question.type)))
      if (record.type === 'A' || record.type === 'AAAA')
        answers.push({ ...record, class: 'IN', flush: !legacy } as Answer)
  if (answers.length === 0) return null
  const qu = ours.every((q) => (q as { qu?: boolean }).qu === true)
  return {
    packet: legacy
      ? { type: 'response', id: query.id ?? 0, questions: ours, answers }
      : { type: 'response', id: 0, answers },
    unicast: legacy || qu,
  }
}

export interface MdnsResponderOptions {
  /** The zone as of now; its name is the `.local` name (mdnsName). */
  zone: () => Zone
  /** IPv4 address of the LAN interface to join the group on and send from (null: every interface). */
  interface: string | null
  /** 5353 but in tests. */
  port?: number
  log: Logger
}

/**
 * mDNS on the LAN (multicast-dns: one UDP socket on 0.0.0.0:5353 in the group 224.0.0.251). A packet
 * that does not decode is dropped by the library (its `warning`), counted here; nothing a sender does
 * throws out of here.
 */
export class MdnsResponder {
  private mdns: makeMdns.MulticastDNS | null = null
  readonly counters = { answered: 0, dropped: 0 }

  constructor(private readonly opts: MdnsResponderOptions) {}

  async start(): Promise<void> {
    const mdns = makeMdns({
      port: this.opts.port ?? MDNS_PORT,
      // Bound to the wildcard: a socket bound to a unicast address gets no multicast datagrams.
      bind: '0.0.0.0',
      ...(this.opts.interface ? { interface: this.opts.interface } : {}),
      reuseAddr: true, // other responders (avahi) may share the port
    })
    this.mdns = mdns
    mdns.on('warning', () => {
      this.counters.dropped++
    })
    mdns.on('query', (query: Packet, rinfo: RemoteInfo) => this.onQuery(query, rinfo))
    await new Promise<void>((resolve, reject) => {
      mdns.once('ready', resolve)
      mdns.once('error', reject)
    })
    mdns.on('error', (error: Error) => this.opts.log.warn({ err: error.message }, 'mDNS socket error'))
  }

  private onQuery(query: Packet, rinfo: RemoteInfo): void {
    let reply: MdnsReply | null
    try {
      reply = answerMdns(query, this.opts.zone(), rinfo.port)
    } catch {
      this.counters.dropped++ // a question dns-packet decoded but we cannot read: drop it
      return
    }
    if (!reply || !this.mdns) return
    this.counters.answered++
    const done = (error?: Error | null) => {
      if (error) this.opts.log.debug({ err: error.message }, 'mDNS answer not sent')
    }
    if (reply.unicast) this.mdns.respond(reply.packet, { address: rinfo.address, port: rinfo.port }, done)
    else this.mdns.respond(reply.packet, done)
  }

  close(): Promise<void> {
    const mdns = this.mdns
    this.mdns = null
    return new Promise((resolve) => (mdns ? mdns.destroy(() => resolve()) : resolve()))
  }
}
