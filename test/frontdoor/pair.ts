import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createLogger } from '../../lib/log.ts'
import { Federation } from '../../overlay/federation.ts'
import { identityFromSeed } from '../../overlay/keys.ts'
import type { LocalTestnet } from '../../overlay/testnet.ts'
import { FrontDoor } from '../../src/frontdoor/front-door.ts'
import type { FrontDoorPort } from '../../src/frontdoor/ports.ts'
import type { Route } from '../../src/frontdoor/route.ts'
import { freePort } from '../../src/util/free-port.ts'

export interface PairNode {
  federation: Federation
  door: FrontDoor
  port: FrontDoorPort
  route: Route
  /** The door's `refusing` (a side without a majority that refuses instead of holding); the test's to change. */
  refusing: boolean
}

/**
 * Two real federation members on a local testnet, each with a front door for one port: `server`
 * routes to its local service (a TCP server the test runs), `origin` forwards to `server`. The
 * route is the test's to change (null: no server known, connections are held).
 */
export class FrontDoorPair {
  readonly nodes: PairNode[] = []
  private dir = ''

  static async start(
    testnet: LocalTestnet,
    service_port: number,
    options: { hold_ms?: number; max_held?: number; proxy_protocol?: boolean } = {},
  ): Promise<FrontDoorPair> {
    const pair = new FrontDoorPair()
    pair.dir = await mkdtemp(join(tmpdir(), 'sustain-frontdoor-'))
    const secret = randomBytes(32)
    const feds = ['server', 'origin'].map(
      (name) =>
        new Federation({
          keyPair: identityFromSeed(randomBytes(32)),
          secret,
          bootstrap: testnet.bootstrap,
          storageDir: join(pair.dir, name),
          name,
          priority: 0,
          validate: (msg) => ({ ok: true, value: msg }),
          log: createLogger({ name, level: 'silent' }),
        }),
    )
    for (const [i, federation] of feds.entries()) {
      const port: FrontDoorPort = {
        name: 'test',
        listen_port: await freePort(),
        service_port,
        env: 'SUSTAIN_PORT',
        proxy_protocol: options.proxy_protocol ?? false,
      }
      const node: PairNode = {
        federation,
        port,
        route: i === 0 ? { kind: 'local' } : { kind: 'remote', key: feds[0]!.key },
        refusing: false,
        door: null as unknown as FrontDoor,
      }
      node.door = new FrontDoor({
        ports: [port],
        bind: '127.0.0.1',
        hold_ms: options.hold_ms ?? 10_000,
        max_held: options.max_held ?? 100,
        route: () => node.route,
        refusing: () => node.refusing,
        mux: (key) => federation.dataMux(key),
        log: createLogger({ name: federation.key.slice(0, 6), level: 'silent' }),
      })
      federation.on('data-connection', (key: string) => {
        const mux = federation.dataMux(key)
        if (mux) node.door.attach(mux)
        node.door.update()
      })
      await node.door.start()
      pair.nodes.push(node)
    }
    // On the lane: a lane that comes up later replaces a data-plane connection and the streams on it.
    const laned = new Promise<void>((resolve) =>
      feds[1]!.on('data-connection', (_key: string, transport: string) => {
        if (transport === 'lane') resolve()
      }),
    )
    await Promise.all(feds.map((f) => f.start()))
    await laned
    return pair
  }

  get server(): PairNode {
    return this.nodes[0]!
  }

  get origin(): PairNode {
    return this.nodes[1]!
  }

  async stop(): Promise<void> {
    for (const n of this.nodes) await n.door.close()
    await Promise.all(this.nodes.map((n) => n.federation.close()))
    await rm(this.dir, { recursive: true, force: true })
  }
}
