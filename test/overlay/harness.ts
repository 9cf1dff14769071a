import { type ChildProcess, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { EventEmitter } from 'node:events'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { forSnapshotTraffic } from '../../src/util/process-settings.ts'
import type { NodeConfig } from './fixtures/node.ts'

const FIXTURE = fileURLToPath(new URL('./fixtures/node.ts', import.meta.url))

export type NodeEvent = { event: string; [k: string]: any }

export async function withTimeout<T>(promise: Promise<T>, timeout_ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${timeout_ms} ms: ${what}`)), timeout_ms)
  })
  try {
    return await Promise.race([promise, expired])
  } finally {
    clearTimeout(timer)
  }
}

/** A federation node running tests/overlay/fixtures/node.ts in a child process. */
export class NodeProc extends EventEmitter {
  readonly child: ChildProcess
  readonly events: NodeEvent[] = []
  key = ''
  /** Public key of the node's control plane. */
  control_key = ''
  private nextReq = 1
  private readonly pending = new Map<number, { resolve: (v: any) => void; reject: (e: Error) => void }>()
  readonly exited: Promise<number | null>

  /** `detached`: the node leads a process group of its own (a benchmark kills the group, as a crash would). */
  constructor(
    readonly config: NodeConfig,
    options: { detached?: boolean } = {},
  ) {
    super()
    this.setMaxListeners(100)
    // SUSTAIN_FIXTURE_NODE_ARGS: extra node flags for profiling (e.g. "--cpu-prof --cpu-prof-dir=DIR";
    // NODE_OPTIONS refuses --cpu-prof).
    const extra = (process.env['SUSTAIN_FIXTURE_NODE_ARGS'] ?? '').split(' ').filter(Boolean)
    const node = forSnapshotTraffic(extra)
    this.child = spawn(process.execPath, [...node.args, '--import', 'tsx', FIXTURE], {
      env: { ...node.env, SUSTAIN_OVERLAY_NODE: JSON.stringify(config) },
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
      detached: options.detached === true,
    })
    this.exited = new Promise((resolve) => this.child.once('exit', (code) => resolve(code)))
    this.child.on('message', (m: any) => {
      if (typeof m.reply === 'number') {
        const p = this.pending.get(m.reply)
        this.pending.delete(m.reply)
        if (m.ok) p?.resolve(m.result)
        else p?.reject(new Error(`${config.name}: ${m.error}`))
        return
      }
      if (m.event === 'ready') {
        this.key = m.key
        this.control_key = m.control_key
      }
      this.events.push(m)
      this.emit('event', m)
    })
    this.child.once('exit', () => {
      for (const p of this.pending.values()) p.reject(new Error(`${config.name} exited`))
      this.pending.clear()
    })
  }

  get name(): string {
    return this.config.name
  }

  /** Resolve with the first event (past or future) matching; reject after timeout_ms. */
  waitFor(pred: (e: NodeEvent) => boolean, timeout_ms: number, what: string, since = 0): Promise<NodeEvent> {
    const past = this.events.slice(since).find(pred)
    if (past) return Promise.resolve(past)
    return withTimeout(
      new Promise<NodeEvent>((resolve) => {
        const on = (e: NodeEvent) => {
          if (!pred(e)) return
          this.off('event', on)
          resolve(e)
        }
        this.on('event', on)
      }),
      timeout_ms,
      `${this.name}: ${what}`,
    )
  }

  /** Resolve once this node's data connection to `peer` runs on a TCP lane. */
  laneTo(peer: NodeProc, timeout_ms = 30_000, since = 0): Promise<NodeEvent> {
    return this.waitFor(
      (e) => e.event === 'data-connection' && e.key === peer.key && e.transport === 'lane',
      timeout_ms,
      `lane to ${peer.name}`,
      since,
    )
  }

  request<T = any>(cmd: string, args: Record<string, unknown> = {}, timeout_ms = 30_000): Promise<T> {
    const req = this.nextReq++
    const reply = new Promise<T>((resolve, reject) => this.pending.set(req, { resolve, reject }))
    this.child.send({ req, cmd, ...args })
    return withTimeout(reply, timeout_ms, `${this.name}: ${cmd}`)
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return
    this.child.kill('SIGCONT')
    await this.request('close', {}, 5000).catch(() => {})
    await withTimeout(this.exited, 5000, `${this.name} exit`).catch(() => this.child.kill('SIGKILL'))
  }
}

/** A federation of fixture nodes sharing one secret and a temp dir; `cleanup` kills every child. */
export class Cluster {
  readonly nodes: NodeProc[] = []
  readonly secret = randomBytes(32).toString('hex')

  private constructor(
    readonly dir: string,
    readonly bootstrap: { host: string; port: number }[],
  ) {}

  static async create(bootstrap: { host: string; port: number }[]): Promise<Cluster> {
    return new Cluster(await mkdtemp(join(tmpdir(), 'sustain-overlay-')), bootstrap)
  }

  spawn(name: string, overrides: Partial<NodeConfig> = {}, options: { detached?: boolean } = {}): NodeProc {
    const node = new NodeProc(
      {
        bootstrap: this.bootstrap,
        secret: this.secret,
        seed: randomBytes(32).toString('hex'),
        storageDir: join(this.dir, name),
        name,
        priority: this.nodes.length,
        ...overrides,
      },
      options,
    )
    this.nodes.push(node)
    return node
  }

  async ready(nodes: NodeProc[], timeout_ms = 20_000): Promise<void> {
    await Promise.all(nodes.map((n) => n.waitFor((e) => e.event === 'ready', timeout_ms, 'ready')))
  }

  /** Wait until every node in `nodes` has every other one as peer-up. */
  async meshed(nodes: NodeProc[], timeout_ms = 20_000): Promise<void> {
    await Promise.all(
      nodes.flatMap((a) =>
        nodes
          .filter((b) => b !== a)
          .map((b) =>
            a.waitFor((e) => e.event === 'peer-up' && e.key === b.key, timeout_ms, `peer-up ${b.name}`),
          ),
      ),
    )
  }

  async cleanup(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.stop()))
    await rm(this.dir, { recursive: true, force: true })
  }
}
