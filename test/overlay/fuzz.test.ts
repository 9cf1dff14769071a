import c from 'compact-encoding'
import HyperDHT, { type KeyPair } from 'hyperdht'
import type { SecretStream } from 'hyperswarm'
import Protomux from 'protomux'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CONTROL_PROTOCOL, encodeFrame, FrameKind } from '../../overlay/frames.ts'
import { admissionProof, deriveAdmissionKey } from '../../overlay/keys.ts'
import { type LocalTestnet, startTestnet } from '../../overlay/testnet.ts'
import { invalidFrame, randomFrame } from './fuzz-frames.ts'
import { Cluster, type NodeProc, withTimeout } from './harness.ts'

const TOTAL_FRAMES = 10_000
const FRAMES_PER_CONNECTION = 40
const WORKERS = 6

type Mode = 'raw-bytes' | 'before-admission' | 'after-admission'

describe('10,000 random and malformed frames against one node', () => {
  let testnet: LocalTestnet
  let cluster: Cluster
  let target: NodeProc
  let witness: NodeProc

  beforeAll(async () => {
    testnet = await startTestnet(5)
    cluster = await Cluster.create(testnet.bootstrap)
    target = cluster.spawn('target')
    witness = cluster.spawn('witness')
    await cluster.ready([target, witness])
    await cluster.meshed([target, witness])
  })

  afterAll(async () => {
    await cluster?.cleanup()
    await testnet?.destroy()
  })

  /** One attack connection: returns once the target closed it. */
  async function attack(dht: HyperDHT, keyPair: KeyPair, mode: Mode, admissionKey: Buffer): Promise<number> {
    const conn: SecretStream = dht.connect(Buffer.from(target.key, 'hex'), { keyPair })
    let error: Error | null = null
    conn.on('error', (e: Error) => {
      error = e
    })
    const closed = new Promise((resolve) => conn.once('close', resolve))
    const opened = new Promise((resolve) => conn.once('open', resolve))
    await withTimeout(Promise.race([opened, closed]), 5000, 'attack connection open')
    if (conn.destroyed) throw new Error(`attack connection failed: ${error}`)
    const frames: Buffer[] = []
    for (let i = 0; i < FRAMES_PER_CONNECTION - 1; i++) frames.push(randomFrame())
    frames.push(invalidFrame()) // the batch always ends with a frame that must be rejected
    if (mode === 'raw-bytes') {
      for (const f of frames) conn.write(f.byteLength > 0 ? f : Buffer.from([0xff]))
    } else {
      const channel = Protomux.from(conn).createChannel({ protocol: CONTROL_PROTOCOL })!
      const message = channel.addMessage<Buffer>({ encoding: c.raw })
      channel.open()
      if (mode === 'after-admission') {
        const hello = {
          proof: admissionProof(admissionKey, conn.handshakeHash!, keyPair.publicKey),
          name: 'fuzzer',
        }
        message.send(encodeFrame(FrameKind.Hello, { ...hello, priority: 0, role: 'candidate', term: 0 }))
      }
      for (const f of frames) message.send(f)
    }
    await withTimeout(closed, 5000, `${mode}: target closes the connection`)
    return frames.length
  }

  it('no crash, every attacking connection dropped, the other peer unaffected', async () => {
    const admissionKey = deriveAdmissionKey(Buffer.from(cluster.secret, 'hex'))
    const dht = new HyperDHT({ bootstrap: testnet.bootstrap, host: '127.0.0.1', firewalled: false })
    await dht.fullyBootstrapped()
    const marks = { target: target.events.length, witness: witness.events.length }
    const modes: Mode[] = ['raw-bytes', 'before-admission', 'after-admission']
    let sent = 0
    let connections = 0
    try {
      await Promise.all(
        Array.from({ length: WORKERS }, async (_, w) => {
          const keyPair = HyperDHT.keyPair()
          for (let round = 0; sent < TOTAL_FRAMES && round < 1000; round++) {
            const mode = modes[(w + round) % modes.length]!
            sent += await attack(dht, keyPair, mode, admissionKey)
            connections++
          }
        }),
      )
    } finally {
      await dht.destroy()
    }
    expect(sent).toBeGreaterThanOrEqual(TOTAL_FRAMES)
    expect(target.child.exitCode).toBeNull()
    expect(target.child.signalCode).toBeNull()
    // The witness and the target never lost each other, and still talk.
    const lost = (n: NodeProc, since: number, other: NodeProc) =>
      n.events.slice(since).filter((e) => e.event === 'peer-down' && e.key === other.key)
    expect(lost(target, marks.target, witness)).toEqual([])
    expect(lost(witness, marks.witness, target)).toEqual([])
    const since = witness.events.length
    expect(await target.request<number>('broadcast', { msg: { type: 'still-here' } })).toBe(1)
    await witness.waitFor((e) => e.event === 'message' && e.msg.type === 'still-here', 5000, 'message', since)
    // Admitted fuzzers were dropped as 'rejected'; the rest were refused before admission.
    const rejected = target.events
      .slice(marks.target)
      .filter((e) => e.event === 'peer-down' && e.reason === 'rejected')
    const refused = target.events.slice(marks.target).filter((e) => e.event === 'admission-refused')
    expect(rejected.length).toBeGreaterThan(0)
    expect(rejected.length + refused.length).toBeGreaterThanOrEqual(Math.floor((connections * 2) / 3))
  })
})
