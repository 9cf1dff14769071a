import c from 'compact-encoding'
import HyperDHT, { type KeyPair } from 'hyperdht'
import type { SecretStream } from 'hyperswarm'
import Protomux from 'protomux'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ADMISSION_PROTOCOL, CONTROL_PROTOCOL, encodeFrame, FrameKind } from '../../overlay/frames.ts'
import { admissionProof, controlKeyPair, deriveAdmissionKey, signControlBinding } from '../../overlay/keys.ts'
import { type LocalTestnet, startTestnet } from '../../overlay/testnet.ts'
import { invalidFrame, randomFrame } from './fuzz-frames.ts'
import { Cluster, type NodeProc, withTimeout } from './harness.ts'

const TOTAL_FRAMES = 10_000
const FRAMES_PER_CONNECTION = 40
const WORKERS = 6

/** after-admission: admitted on the control plane; data-after-admission: admitted on the data plane. */
type Mode = 'raw-bytes' | 'before-admission' | 'after-admission' | 'data-after-admission'
type Plane = 'control' | 'data'

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
  async function attack(
    dht: HyperDHT,
    identity: KeyPair,
    mode: Mode,
    plane: Plane,
    admissionKey: Buffer,
  ): Promise<number> {
    const keyPair = plane === 'control' ? controlKeyPair(identity) : identity
    const remote = plane === 'control' ? target.control_key : target.key
    const conn: SecretStream = dht.connect(Buffer.from(remote, 'hex'), { keyPair })
    let error: Error | null = null
    conn.on('error', (e: Error) => {
      error = e
    })
    const closed = new Promise((resolve) => conn.once('close', resolve))
    const opened = new Promise((resolve) => conn.once('open', resolve))
    await withTimeout(Promise.race([opened, closed]), 5000, 'attack connection open')
    if (conn.destroyed) throw new Error(`attack connection failed (${mode} ${plane}): ${error}`)
    const frames: Buffer[] = []
    for (let i = 0; i < FRAMES_PER_CONNECTION - 1; i++) frames.push(randomFrame())
    frames.push(invalidFrame()) // the batch always ends with a frame that must be rejected
    if (mode === 'raw-bytes') {
      for (const f of frames) conn.write(f.byteLength > 0 ? f : Buffer.from([0xff]))
    } else {
      const protocol = plane === 'control' ? CONTROL_PROTOCOL : ADMISSION_PROTOCOL
      const channel = Protomux.from(conn).createChannel({ protocol })!
      const message = channel.addMessage<Buffer>({ encoding: c.raw })
      channel.open()
      const proof = admissionProof(admissionKey, conn.handshakeHash!, keyPair.publicKey)
      if (mode === 'after-admission') {
        const hello = {
          proof,
          identity: identity.publicKey,
          binding: signControlBinding(identity, conn.handshakeHash!, keyPair.publicKey),
          name: 'fuzzer',
        }
        message.send(encodeFrame(FrameKind.Hello, { ...hello, priority: 0, role: 'candidate', term: 0 }))
      } else if (mode === 'data-after-admission') {
        message.send(encodeFrame(FrameKind.Admit, { proof }))
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
    const modes: Mode[] = ['raw-bytes', 'before-admission', 'after-admission', 'data-after-admission']
    let sent = 0
    const connections: Record<Mode, number> = {
      'raw-bytes': 0,
      'before-admission': 0,
      'after-admission': 0,
      'data-after-admission': 0,
    }
    try {
      await Promise.all(
        Array.from({ length: WORKERS }, async (_, w) => {
          const identity = HyperDHT.keyPair()
          for (let round = 0; sent < TOTAL_FRAMES && round < 1000; round++) {
            const mode = modes[(w + round) % modes.length]!
            // Raw bytes and unadmitted frames go to both planes in turn; admitted ones to their plane.
            const plane: Plane =
              mode === 'after-admission'
                ? 'control'
                : mode === 'data-after-admission' || (w + round) % 2 === 1
                  ? 'data'
                  : 'control'
            sent += await attack(dht, identity, mode, plane, admissionKey)
            connections[mode]++
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
    // Fuzzers admitted on the control plane were dropped as 'rejected'; unadmitted ones were refused.
    const rejected = target.events
      .slice(marks.target)
      .filter((e) => e.event === 'peer-down' && e.reason === 'rejected')
    const refused = target.events.slice(marks.target).filter((e) => e.event === 'admission-refused')
    expect(connections['after-admission']).toBeGreaterThan(0)
    expect(connections['data-after-admission']).toBeGreaterThan(0)
    expect(rejected.length).toBe(connections['after-admission'])
    expect(refused.length).toBeGreaterThanOrEqual(connections['before-admission'])
  })
})
