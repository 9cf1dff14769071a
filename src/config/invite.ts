import { Packr } from 'msgpackr'
import { deriveTopic } from '../../overlay/keys.ts'
import { hostPortText, parseHostPort } from './host-port.ts'
import { ConfigError } from './load.ts'

/**
 * An invite token carries what `sustain join` needs: the federation's name, its public key (the topic,
 * shown so people can compare) and its secret, plus the bootstrap nodes. Anyone holding it can join:
 * hand it over like a password.
 */
export interface Invite {
  name: string
  key: string
  secret: string
  /** `host:port` each. */
  bootstrap: string[]
}

const PREFIX = 'sustain1.'
const packr = new Packr({ useRecords: false })

export function federationKey(secret_hex: string): string {
  return deriveTopic(Buffer.from(secret_hex, 'hex')).toString('hex')
}

export function encodeInvite(invite: Omit<Invite, 'key'>): string {
  // {host, port} in the token: the form every version of `sustain join` reads.
  const b = invite.bootstrap.map((text) => {
    const node = parseHostPort(text)
    if (node === null) throw new ConfigError(`bootstrap node "${text}" is not host:port`)
    return node
  })
  const body = packr.pack({ v: 1, n: invite.name, s: Buffer.from(invite.secret, 'hex'), b })
  return PREFIX + Buffer.from(body).toString('base64url')
}

export function decodeInvite(token: string): Invite {
  const bad = (why: string) => new ConfigError(`invalid invite token: ${why}`)
  const trimmed = token.trim()
  if (!trimmed.startsWith(PREFIX)) throw bad(`it must start with "${PREFIX}"`)
  let body: unknown
  try {
    body = packr.unpack(Buffer.from(trimmed.slice(PREFIX.length), 'base64url'))
  } catch {
    throw bad('it is damaged (not decodable); copy it again in one piece')
  }
  const b = body as { v?: unknown; n?: unknown; s?: unknown; b?: unknown }
  if (b?.v !== 1) throw bad(`unsupported version ${JSON.stringify(b?.v)}`)
  if (typeof b.n !== 'string' || b.n.length === 0) throw bad('no federation name')
  if (!(b.s instanceof Uint8Array) || b.s.byteLength !== 32) throw bad('the secret is not 32 bytes')
  const bootstrap = (Array.isArray(b.b) ? (b.b as unknown[]) : []).map((node) => {
    const text = hostPortText(node)
    if (text === null) throw bad(`bootstrap entry ${JSON.stringify(node)} is not host:port`)
    return text
  })
  const secret = Buffer.from(b.s).toString('hex')
  return { name: b.n, key: federationKey(secret), secret, bootstrap }
}
