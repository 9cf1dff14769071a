import { randomBytes } from 'node:crypto'
import { EventEmitter } from 'node:events'
import net from 'node:net'
import NoiseSecretStream from '@hyperswarm/secret-stream'
import c from 'compact-encoding'
import Corestore from 'corestore'
import HyperDHT from 'hyperdht'
import Hyperswarm, { type SecretStream } from 'hyperswarm'
import Protomux from 'protomux'
import {
  ADMISSION_PROTOCOL,
  CONTROL_PROTOCOL,
  decodeFrame,
  encodeFrame,
  FrameKind,
} from '../../overlay/frames.ts'
import { writerCoreKey } from '../../overlay/snapshot-feeds.ts'

export interface IntruderConnection {
  key: string
  opened_ms: number
  closed_ms: number | null
  frames: number[]
}

/**
 * A peer that found the topics (say, they leaked) but lacks the secret. mode 'bad-proof' sends a hello
 * and an admit with random proofs on every connection (it opens both planes' channels); 'silent' sends
 * nothing. It also replicates a corestore asking for the members' snapshot cores, to show that no
 * block reaches it.
 */
export class Intruder extends EventEmitter {
  readonly swarm: Hyperswarm
  readonly store: Corestore
  readonly connections: IntruderConnection[] = []
  blocks_received = 0

  constructor(
    bootstrap: { host: string; port: number }[],
    readonly storageDir: string,
    readonly mode: 'bad-proof' | 'silent',
  ) {
    super()
    this.swarm = new Hyperswarm({ dht: new HyperDHT({ bootstrap, host: '127.0.0.1', firewalled: false }) })
    this.store = new Corestore(storageDir)
    this.swarm.on('connection', (conn: SecretStream) => this.onConnection(conn))
  }

  async join(topics: Buffer[], writers: string[]): Promise<void> {
    for (const w of writers) {
      const core = this.store.get({ key: writerCoreKey(Buffer.from(w, 'hex')) })
      await core.ready()
      core.on('download', () => this.blocks_received++)
      core.download({ start: 0, end: -1 })
    }
    for (const topic of topics) {
      const d = this.swarm.join(topic, { server: true, client: true })
      await d.flushed()
      await d.refresh()
    }
  }

  /** Reach a member's data lane directly (its TCP port found by a port scan, say). */
  async dialLane(host: string, port: number): Promise<void> {
    const conn = new NoiseSecretStream(true, net.connect({ host, port }), { keyPair: this.swarm.keyPair })
    conn.on('error', () => {})
    if (await conn.opened) this.onConnection(conn)
  }

  private onConnection(conn: SecretStream): void {
    conn.on('error', () => {})
    const record: IntruderConnection = {
      key: conn.remotePublicKey.toString('hex'),
      opened_ms: performance.now(),
      closed_ms: null,
      frames: [],
    }
    this.connections.push(record)
    conn.on('close', () => {
      record.closed_ms = performance.now()
      this.emit('closed', record)
    })
    this.store.replicate(conn)
    const open = (protocol: string) => {
      const channel = Protomux.from(conn).createChannel({ protocol })!
      const message = channel.addMessage<Buffer>({
        encoding: c.raw,
        onmessage: (f) => {
          const d = decodeFrame(f)
          record.frames.push(d.ok ? d.kind : -1)
        },
      })
      channel.open()
      return message
    }
    const control = open(CONTROL_PROTOCOL)
    const admission = open(ADMISSION_PROTOCOL)
    if (this.mode === 'bad-proof') {
      control.send(
        encodeFrame(FrameKind.Hello, {
          proof: randomBytes(32),
          identity: randomBytes(32),
          binding: randomBytes(64),
          name: 'intruder',
          priority: 99,
          role: 'candidate',
          term: 0,
        }),
      )
      admission.send(encodeFrame(FrameKind.Admit, { proof: randomBytes(32) }))
    }
  }

  /** Resolves once `count` connections from distinct members have been closed on us. */
  closedBy(count: number): Promise<void> {
    const done = () =>
      new Set(this.connections.filter((c) => c.closed_ms !== null).map((c) => c.key)).size >= count
    if (done()) return Promise.resolve()
    return new Promise((resolve) => {
      const on = () => {
        if (!done()) return
        this.off('closed', on)
        resolve()
      }
      this.on('closed', on)
    })
  }

  async close(): Promise<void> {
    await this.swarm.destroy()
    await this.store.close()
  }
}
