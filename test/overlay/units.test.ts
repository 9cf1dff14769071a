import { randomBytes } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { decodeFrame, encodeFrame, FrameKind, WIRE_VERSION } from '../../overlay/frames.ts'
import {
  admissionProof,
  controlKeyPair,
  createIdentity,
  deriveAdmissionKey,
  deriveBlockKey,
  deriveControlTopic,
  deriveTopic,
  signControlBinding,
  verifyAdmissionProof,
  verifyControlBinding,
} from '../../overlay/keys.ts'
import { PeerTable } from '../../overlay/peer-table.ts'
import { DEFAULT_PHI_OPTIONS, PhiAccrual } from '../../overlay/phi-accrual.ts'
import { rendezvousHolders } from '../../overlay/rendezvous.ts'
import { invalidFrame, randomFrame } from './fuzz-frames.ts'

describe('frames', () => {
  it('round-trips every frame kind', () => {
    const control = { type: 'heartbeat', term: 3, snapshot: 'abc', health: { ok: true } }
    expect(decodeFrame(encodeFrame(FrameKind.Control, control))).toEqual({
      ok: true,
      kind: FrameKind.Control,
      body: control,
    })
    const ping = decodeFrame(encodeFrame(FrameKind.Ping, { role: 'server', term: 7 }))
    expect(ping).toEqual({ ok: true, kind: FrameKind.Ping, body: { role: 'server', term: 7 } })
    const proof = randomBytes(32)
    const identity = randomBytes(32)
    const binding = randomBytes(64)
    const hello = decodeFrame(
      encodeFrame(FrameKind.Hello, {
        proof,
        identity,
        binding,
        name: 'n',
        priority: 2,
        role: 'candidate',
        term: 0,
      }),
    )
    expect(hello.ok && hello.kind === FrameKind.Hello).toBe(true)
    if (hello.ok && hello.kind === FrameKind.Hello) {
      expect(Buffer.from(hello.body.proof).equals(proof)).toBe(true)
      expect(Buffer.from(hello.body.identity).equals(identity)).toBe(true)
      expect(Buffer.from(hello.body.binding).equals(binding)).toBe(true)
    }
    const admit = decodeFrame(encodeFrame(FrameKind.Admit, { proof }))
    expect(admit.ok && admit.kind === FrameKind.Admit && Buffer.from(admit.body.proof).equals(proof)).toBe(
      true,
    )
    // The optional announcements: a published length on pings and hellos, a lane port on hellos.
    expect(decodeFrame(encodeFrame(FrameKind.Ping, { role: 'server', term: 7, published: 42 }))).toEqual({
      ok: true,
      kind: FrameKind.Ping,
      body: { role: 'server', term: 7, published: 42 },
    })
    for (const published of [-1, 1.5, '3', 2 ** 60]) {
      const bad = decodeFrame(encodeFrame(FrameKind.Ping, { role: 'server', term: 7, published }))
      expect(bad).toEqual({ ok: false, reason: 'ping: bad published length' })
    }
    const base = { proof, identity, binding, name: 'n', priority: 2, role: 'candidate', term: 0 }
    const announcing = decodeFrame(encodeFrame(FrameKind.Hello, { ...base, lane_port: 4100, published: 9 }))
    expect(announcing.ok && announcing.kind === FrameKind.Hello && announcing.body).toMatchObject({
      lane_port: 4100,
      published: 9,
    })
    for (const lane_port of [0, 70_000, 'x']) {
      expect(decodeFrame(encodeFrame(FrameKind.Hello, { ...base, lane_port }))).toEqual({
        ok: false,
        reason: 'hello: bad lane port',
      })
    }
    // A hello without the identity binding (the version 1 shape) is refused.
    expect(
      decodeFrame(encodeFrame(FrameKind.Hello, { proof, name: 'n', priority: 2, role: 'c', term: 0 })).ok,
    ).toBe(false)
  })

  it('refuses to encode an oversized frame', () => {
    expect(() => encodeFrame(FrameKind.Control, { type: 'x', pad: 'y'.repeat(70_000) })).toThrow(RangeError)
  })

  it('10,000 random and malformed frames: never throws, every invalid one is rejected with a reason', () => {
    for (let i = 0; i < 10_000; i++) {
      const bad = invalidFrame()
      const decoded = decodeFrame(bad)
      const rejected = !decoded.ok || (decoded.kind === FrameKind.Control && decoded.body.type === 'bad')
      expect(rejected, `accepted ${bad.toString('hex').slice(0, 80)}`).toBe(true)
      if (!decoded.ok) expect(decoded.reason.length).toBeGreaterThan(0)
      expect(() => decodeFrame(randomFrame())).not.toThrow()
    }
  })

  it('decoded control messages are plain objects (no prototype tricks)', () => {
    const evil = Buffer.concat([
      Buffer.from([WIRE_VERSION, FrameKind.Control]),
      Buffer.from('82a474797065a178a95f5f70726f746f5f5f81a161a162', 'hex'),
    ])
    const decoded = decodeFrame(evil)
    expect(({} as Record<string, unknown>)['a']).toBeUndefined()
    if (decoded.ok) expect(Object.getPrototypeOf(decoded.body)).toBe(Object.prototype)
  })
})

describe('keys and admission proofs', () => {
  const secret = randomBytes(32)
  const key = deriveAdmissionKey(secret)
  const hh = randomBytes(64)
  const alice = randomBytes(32)
  const bob = randomBytes(32)

  it('derives distinct keys per purpose', () => {
    const all = [deriveTopic(secret), deriveControlTopic(secret), deriveBlockKey(secret), key]
    expect(new Set(all.map((b) => b.toString('hex'))).size).toBe(4)
  })

  it('derives a stable control key pair per identity and binds control connections to the identity', () => {
    const identity = createIdentity()
    const control = controlKeyPair(identity)
    expect(controlKeyPair(identity).publicKey.equals(control.publicKey)).toBe(true)
    expect(control.publicKey.equals(identity.publicKey)).toBe(false)
    expect(controlKeyPair(createIdentity()).publicKey.equals(control.publicKey)).toBe(false)
    const binding = signControlBinding(identity, hh, control.publicKey)
    expect(verifyControlBinding(identity.publicKey, hh, control.publicKey, binding)).toBe(true)
    expect(verifyControlBinding(identity.publicKey, randomBytes(64), control.publicKey, binding)).toBe(false)
    expect(verifyControlBinding(identity.publicKey, hh, randomBytes(32), binding)).toBe(false)
    expect(verifyControlBinding(createIdentity().publicKey, hh, control.publicKey, binding)).toBe(false)
    expect(verifyControlBinding(identity.publicKey, hh, control.publicKey, binding.subarray(1))).toBe(false)
  })

  it('accepts the right proof and rejects replay on another connection, reflection and wrong secrets', () => {
    const proof = admissionProof(key, hh, alice)
    expect(verifyAdmissionProof(key, hh, alice, proof)).toBe(true)
    expect(verifyAdmissionProof(key, randomBytes(64), alice, proof)).toBe(false) // another handshake
    expect(verifyAdmissionProof(key, hh, bob, proof)).toBe(false) // reflected to another key
    expect(verifyAdmissionProof(deriveAdmissionKey(randomBytes(32)), hh, alice, proof)).toBe(false)
    expect(verifyAdmissionProof(key, hh, alice, proof.subarray(0, 31))).toBe(false)
  })
})

describe('rendezvous placement', () => {
  it('is deterministic, returns r distinct holders, and moves little when a member leaves', () => {
    const nodes = Array.from({ length: 8 }, () => randomBytes(32).toString('hex'))
    const items = Array.from({ length: 400 }, (_, i) => `blob-${i}`)
    let moved = 0
    for (const item of items) {
      const h = rendezvousHolders(item, nodes, 2)
      expect(h).toEqual(rendezvousHolders(item, [...nodes].reverse(), 2))
      expect(new Set(h).size).toBe(2)
      const after = rendezvousHolders(item, nodes.slice(1), 2)
      if (!h.includes(nodes[0]!)) expect(after).toEqual(h)
      else moved++
    }
    expect(moved).toBeGreaterThan(50) // about 2/8 of the items
    expect(moved).toBeLessThan(160)
  })
})

describe('peer table', () => {
  it('tracks reachability, revival and the current server', () => {
    const t = new PeerTable()
    t.up('a', { name: 'a', priority: 1, role: 'candidate', term: 0 }, 0)
    t.up('b', { name: 'b', priority: 2, role: 'server', term: 4 }, 0)
    expect(t.view({ key: 'self', role: 'server', term: 3 }).server).toBe('b')
    expect(t.down('b', 'suspected')).toBe(true)
    expect(t.down('b', 'closed')).toBe(false)
    expect(t.view({ key: 'self', role: 'server', term: 3 }).server).toBe('self')
    expect(t.view().unreachable.map((e) => [e.key, e.down_reason])).toEqual([['b', 'suspected']])
    expect(t.revive('b')).toBe(true)
    expect(t.reachableKeys().sort()).toEqual(['a', 'b'])
  })
})

describe('phi-accrual prior', () => {
  /** Time from the last heartbeat to suspicion after a young history with one 1 s stall. */
  function detectionAfterStall(prior_intervals: number): number {
    const d = new PhiAccrual({
      ...DEFAULT_PHI_OPTIONS,
      min_std_dev_ms: 100,
      first_interval_ms: 100,
      prior_intervals,
    })
    let t = 0
    for (let i = 0; i < 10; i++) {
      t += i === 5 ? 1000 : 100
      d.heartbeat(t)
    }
    return d.suspectAt()! - t
  }

  it('a stronger prior keeps one early stall from pushing detection past a second', () => {
    expect(detectionAfterStall(2)).toBeGreaterThan(1000)
    expect(detectionAfterStall(20)).toBeLessThan(1000)
    expect(() => new PhiAccrual({ ...DEFAULT_PHI_OPTIONS, prior_intervals: 3 })).toThrow(RangeError)
  })
})
