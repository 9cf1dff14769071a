import { isIP } from 'node:net'
import dnsPacket, { type Answer, type Packet } from 'dns-packet'

/** What the answerer says about its one name. */
export interface Zone {
  /** The service's name, lower case, without the trailing dot. */
  name: string
  ttl_s: number
  /** Front door addresses of the reachable nodes, the server's first. */
  addresses: readonly string[]
  /** SOA serial: grows when the answer changes (the server's term). */
  serial: number
}

/** Largest UDP answer without EDNS (RFC 1035); past it the answer is truncated (TC) and TCP asked. */
export const UDP_LIMIT_BYTES = 512

const RCODE_NXDOMAIN = 3
const RCODE_REFUSED = 5
const RCODE_NOTIMP = 4

function canonical(name: string): string {
  return name.toLowerCase().replace(/\.$/, '')
}

function soa(zone: Zone): Answer {
  return {
    type: 'SOA',
    name: zone.name,
    ttl: zone.ttl_s,
    data: {
      mname: zone.name,
      rname: `hostmaster.${zone.name}`,
      serial: zone.serial >>> 0,
      refresh: 60,
      retry: 10,
      expire: 600,
      // Negative answers are cached no longer than positive ones.
      minimum: zone.ttl_s,
    },
  }
}

/** The records of `zone` of one type (A, AAAA, ANY: both, SOA, NS); none for other types. */
export function records(zone: Zone, type: string): Answer[] {
  const a = zone.addresses.filter((ip) => isIP(ip) === 4)
  const aaaa = zone.addresses.filter((ip) => isIP(ip) === 6)
  const base = { name: zone.name, ttl: zone.ttl_s }
  switch (type) {
    case 'A':
      return a.map((data) => ({ ...base, type: 'A', data }))
    case 'AAAA':
      return aaaa.map((data) => ({ ...base, type: 'AAAA', data }))
    case 'ANY':
      return [...records(zone, 'A'), ...records(zone, 'AAAA')]
    case 'SOA':
      return [soa(zone)]
    case 'NS':
      // Every node that has a front door answers DNS too: the name is its own name server (with glue).
      return [{ ...base, type: 'NS', data: zone.name }]
    default:
      return []
  }
}

/**
 * The answer to one DNS query packet, or null to drop it (malformed, or not a query). Authoritative
 * for `zone.name` only: A/AAAA with the front doors (server first, TTL <= 5 s), SOA and NS so a parent
 * zone can delegate; a name below it is NXDOMAIN; any other name is REFUSED. Decoding is dns-packet's.
 */
export function answerQuery(message: Buffer, zone: Zone, transport: 'udp' | 'tcp'): Buffer | null {
  let query: Packet
  try {
    query = dnsPacket.decode(message)
  } catch {
    return null
  }
  if (query.type !== 'query' || typeof query.id !== 'number') return null
  const question = query.questions?.[0]
  const flags = query.flags ?? 0
  const reply: Packet = {
    type: 'response',
    id: query.id,
    // Opcode bits of the query, recursion-desired copied (RFC 1035 4.1.1).
    flags: (flags & 0x7800) | (flags & dnsPacket.RECURSION_DESIRED),
    questions: question ? [question] : [],
    answers: [],
    authorities: [],
    additionals: [],
  }
  const opcode = (flags >> 11) & 0xf
  if (!question || query.questions!.length !== 1 || opcode !== 0) {
    reply.flags! |= RCODE_NOTIMP
    return encode(reply)
  }
  const name = canonical(String(question.name ?? ''))
  if (name === zone.name) {
    reply.flags! |= dnsPacket.AUTHORITATIVE_ANSWER
    reply.answers = records(zone, String(question.type))
    if (reply.answers.length === 0) reply.authorities = [soa(zone)] // NODATA
    if (question.type === 'NS') reply.additionals = records(zone, 'ANY') // glue
  } else if (name.endsWith(`.${zone.name}`)) {
    reply.flags! |= dnsPacket.AUTHORITATIVE_ANSWER | RCODE_NXDOMAIN
    reply.authorities = [soa(zone)]
  } else {
    reply.flags! |= RCODE_REFUSED
  }
  const encoded = encode(reply)
  if (transport === 'udp' && encoded && encoded.byteLength > UDP_LIMIT_BYTES) {
    return encode({
      ...reply,
      flags: reply.flags! | dnsPacket.TRUNCATED_RESPONSE,
      answers: [],
      additionals: [],
    })
  }
  return encoded
}

function encode(packet: Packet): Buffer | null {
  try {
    return dnsPacket.encode(packet)
  } catch {
    return null // a question dns-packet decoded but cannot encode back: drop
  }
}
