import { type ChildProcess, spawn } from 'node:child_process'
import { EventEmitter, once } from 'node:events'
import { createWriteStream, readdirSync, readFileSync, type WriteStream } from 'node:fs'
import { mkdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { stringify } from 'yaml'
import { writeFileAtomic } from '../../lib/atomic-write.ts'
import { formatHostPort, type HostPort } from '../config/host-port.ts'
import { initNode } from '../config/init-node.ts'
import { encodeInvite } from '../config/invite.ts'
import { loadConfig, parseConfig } from '../config/load.ts'
import type { MergePolicy } from '../core/config.ts'
import { controlRequest } from '../runtime/control-client.ts'
import { nodePaths } from '../runtime/paths.ts'
import { checkPortFree } from '../runtime/preflight.ts'
import type { NodeStatus } from '../runtime/status.ts'
import { forSnapshotTraffic } from '../util/process-settings.ts'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const BIN = join(ROOT, 'bin', 'sustain.js')
const TESTNET = join(ROOT, 'overlay', 'testnet-main.ts')

export interface LocalFederationOptions {
  dir: string
  nodes: number
  /** Service directory every node can run (default: examples/mail). */
  service_dir?: string
  /** Node i serves on base_port + i (loopback); default: a free range found at start. */
  base_port?: number
  snapshot_interval_ms?: number
  heartbeat_interval_ms?: number
  /** Node i gets priority priorities[i] (default: decreasing, node 0 highest). */
  priorities?: number[]
  /** Heal policy: merge through the service's helper (default) or keep the loser's changes aside. */
  merge_policy?: MergePolicy
  /** Extra `sustain join` arguments for node i (e.g. --metrics PORT). */
  join_args?: (index: number) => string[]
  /**
   * Give every node a front door for the service's client port `smtp`: node i listens on
   * 127.0.1.(i+1), all on one port (as a deployment would on different machines).
   */
  front_door?: { hold_ms?: number; max_held?: number; port_name?: string; dns_name?: string }
  /** Zero-loss mode on every node (config service.output_commit; needs `front_door`): k, or off. */
  output_commit?: number | 'off'
  /** Loopback ports of the service's other client ports on node i (config service.ports). */
  service_ports?: (index: number) => Record<string, number>
  /** Warm or cold standby on every node (config service.standby; default cold). */
  standby?: 'warm' | 'cold'
  /** Election strategy on every node (config election.strategy; default static). */
  strategy?: 'static' | 'freshest' | 'capacity'
  /** Node i declares capacity_weights[i] (config election.capacity_weight; default 1). */
  capacity_weights?: number[]
  /** A higher-ranked node that appears while a server runs takes over (config election.preempt). */
  preempt?: boolean
  /** Node i's site label (config node.site; undefined: none). */
  sites?: Array<string | undefined>
  /** Node i keeps disk_reserve_bytes[i] of its disk for other uses (config node.disk_reserve_bytes). */
  disk_reserve_bytes?: number[]
  /** r-way replication on every node (config snapshots.replication_factor; default all). */
  replication_factor?: number
}

/** Front door address of node `index` in a local federation. */
export function frontDoorHost(index: number): string {
  return `127.0.1.${index + 1}`
}

export type LogRecord = Record<string, unknown> & { event?: string; msg?: string }

/** One node process of a local federation; it runs in its own process group (node + its service). */
export class LocalNode extends EventEmitter {
  child: ChildProcess | null = null
  readonly records: LogRecord[] = []
  private log_file: WriteStream | null = null

  constructor(
    readonly index: number,
    readonly name: string,
    readonly data_dir: string,
    readonly port: number,
    private readonly args: string[],
    /** Where this node's front door accepts clients (null: no front door). */
    readonly front_door: { host: string; port: number; dns_port: number | null } | null = null,
    /** Argv the node's command runs under (e.g. `ip netns exec NS`, `faketime +60s`): the fault lab's hosts. */
    public launcher: string[] = [],
  ) {
    super()
  }

  get pid(): number | undefined {
    return this.child?.pid
  }

  get running(): boolean {
    return this.child !== null && this.child.exitCode === null && this.child.signalCode === null
  }

  start(): void {
    if (this.running) throw new Error(`${this.name} is already running`)
    this.log_file = createWriteStream(join(this.data_dir, 'node.log'), { flags: 'a' })
    const node = forSnapshotTraffic()
    const argv = [...this.launcher, process.execPath, ...node.args, BIN, 'join', ...this.args]
    const child = spawn(argv[0]!, argv.slice(1), {
      detached: true, // own process group: killing the group takes the service too, like a machine dying
      env: node.env,
      stdio: ['ignore', 'ignore', 'pipe'],
    })
    this.child = child
    const lines = createInterface({ input: child.stderr! })
    lines.on('line', (line) => {
      this.log_file?.write(`${line}\n`)
      let record: LogRecord
      try {
        record = JSON.parse(line) as LogRecord
      } catch {
        record = { msg: line }
      }
      this.records.push(record)
      this.emit('record', record)
    })
    child.once('exit', (code, signal) => {
      this.log_file?.end()
      this.emit('exit', code, signal)
    })
  }

  /**
   * `machine` (default): signal the node's process group and its service's (the driver runs the service
   * in a group of its own): SIGKILL or SIGSTOP then hit the machine as a whole, as a crash or a freeze
   * would. `node`: the node process alone, as an OOM kill or a crash of the node would end it.
   */
  signal(signal: NodeJS.Signals, scope: 'machine' | 'node' = 'machine'): void {
    if (!this.child?.pid) return
    const targets =
      scope === 'node' ? [this.child.pid] : [-this.child.pid, ...childrenOf(this.child.pid).map((g) => -g)]
    for (const target of targets) {
      try {
        process.kill(target, signal)
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code
        if (code !== 'ESRCH' && code !== 'EPERM') throw error
      }
    }
  }

  async waitExit(timeout_ms: number): Promise<void> {
    if (!this.running) return
    await withTimeout(once(this, 'exit'), timeout_ms, `${this.name} to exit`)
  }

  /**
   * Resolves with the first log record (past or future) that matches. The listener goes away on a
   * match, on the timeout and on `signal` (a race among nodes aborts the losers).
   */
  waitFor(
    match: (record: LogRecord) => boolean,
    timeout_ms: number,
    what: string,
    signal?: AbortSignal,
  ): Promise<LogRecord> {
    const seen = this.records.find(match)
    if (seen) return Promise.resolve(seen)
    let listener: ((record: LogRecord) => void) | null = null
    const found = new Promise<LogRecord>((resolve, reject) => {
      listener = (record: LogRecord) => {
        if (match(record)) resolve(record)
      }
      this.on('record', listener)
      signal?.addEventListener('abort', () => reject(new Error(`${this.name}: ${what}: aborted`)), {
        once: true,
      })
    })
    return withTimeout(found, timeout_ms, `${this.name}: ${what}`).finally(() => {
      if (listener) this.off('record', listener)
    })
  }

  async status(timeout_ms = 2000): Promise<NodeStatus | null> {
    let status: NodeStatus | null = null
    try {
      await controlRequest(
        nodePaths(this.data_dir).socket,
        { cmd: 'status' },
        (line) => {
          status = line.status as NodeStatus
        },
        timeout_ms,
      )
    } catch {
      return null
    }
    return status
  }

  mailbox(name: string, folder = 'mail'): Promise<string> {
    return readFile(join(nodePaths(this.data_dir).service_state, folder, name), 'utf8').catch(() => '')
  }

  /** Partition this node from every peer for `ms` (the node's testing nemesis, over its control socket). */
  async isolate(ms: number): Promise<void> {
    await controlRequest(nodePaths(this.data_dir).socket, { cmd: 'isolate', ms }, (line) => {
      if (line.ok !== true) throw new Error(`isolate refused: ${String(line.error)}`)
    })
  }
}

/** Direct children of a process, from /proc (Linux). */
export function childrenOf(pid: number): number[] {
  try {
    return readdirSync(`/proc/${pid}/task`).flatMap((task) =>
      readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8').split(/\s+/).filter(Boolean).map(Number),
    )
  } catch {
    return []
  }
}

/** A run of `count` consecutive loopback ports that are free now (so parallel federations do not clash). */
async function freePortRange(count: number, host?: string): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 20_000 + Math.floor(Math.random() * 20_000)
    let free = true
    for (let i = 0; i < count && free; i++)
      free = await checkPortFree(base + i, host).then(
        () => true,
        () => false,
      )
    if (free) return base
  }
  throw new Error(`no ${count} consecutive free loopback ports found`)
}

export async function withTimeout<T>(promise: Promise<T>, timeout_ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`timed out after ${timeout_ms} ms waiting for ${what}`)),
      timeout_ms,
    )
  })
  try {
    return await Promise.race([promise, timeout])
  } finally {
    clearTimeout(timer)
  }
}

/**
 * A federation of real node processes on one machine: a local DHT testnet bound to 127.0.0.1, and N
 * `sustain join` processes with their own data directories, each able to run the same service on its
 * own loopback port. Used by `sustain demo`, the end-to-end tests and the failover benchmark.
 */
export class LocalFederation {
  readonly nodes: LocalNode[] = []
  private testnet: ChildProcess | null = null
  /** The testnet's nodes, `host:port` each. */
  bootstrap: string[] = []

  constructor(readonly options: LocalFederationOptions) {}

  async start(): Promise<void> {
    const { options } = this
    await mkdir(options.dir, { recursive: true })
    this.testnet = spawn(process.execPath, ['--import', 'tsx', TESTNET, '--size', '5'], {
      stdio: ['pipe', 'pipe', 'inherit'],
    })
    const first = createInterface({ input: this.testnet.stdout! })
    // 20 s was too short at a load of 40 (2 shared cores): tsx compiles the testnet before it prints.
    const [line] = (await withTimeout(once(first, 'line'), 90_000, 'the testnet')) as [string]
    first.close()
    this.bootstrap = (JSON.parse(line) as { bootstrap: HostPort[] }).bootstrap.map(formatHostPort)
    const service_dir = options.service_dir ?? join(ROOT, 'examples', 'mail')
    const base_port = options.base_port ?? (await freePortRange(options.nodes))
    const front_door_port = options.front_door ? await freePortRange(2, frontDoorHost(0)) : 0
    let token = ''
    for (let i = 0; i < options.nodes; i++) {
      const name = `node-${i}`
      const data_dir = join(options.dir, name)
      const priority = options.priorities?.[i] ?? (options.nodes - i) * 10
      await initNode({
        data: data_dir,
        name,
        priority,
        federation: 'demo',
        serve_bootstrap_port: 0, // the testnet is the DHT
        ...(i > 0 ? { invite: token } : {}),
      })
      const path = nodePaths(data_dir).config
      const config = await loadConfig(path)
      if (i === 0)
        token = encodeInvite({ name: 'demo', secret: config.federation.secret, bootstrap: this.bootstrap })
      const tuned = parseConfig({
        ...config,
        federation: { ...config.federation, bootstrap: this.bootstrap },
        node: {
          ...config.node,
          ...(options.sites?.[i] !== undefined ? { site: options.sites[i] } : {}),
          ...(options.disk_reserve_bytes ? { disk_reserve_bytes: options.disk_reserve_bytes[i] } : {}),
        },
        timing: {
          ...config.timing,
          snapshot_interval_ms: options.snapshot_interval_ms ?? 1000,
          heartbeat_interval_ms: options.heartbeat_interval_ms ?? config.timing.heartbeat_interval_ms,
        },
        service: {
          dir: service_dir,
          port: base_port + i,
          ...(options.service_ports ? { ports: options.service_ports(i) } : {}),
          ...(options.output_commit !== undefined ? { output_commit: options.output_commit } : {}),
          ...(options.standby ? { standby: options.standby } : {}),
        },
        election: {
          ...config.election,
          merge_policy: options.merge_policy ?? config.election.merge_policy,
          ...(options.strategy ? { strategy: options.strategy } : {}),
          ...(options.preempt !== undefined ? { preempt: options.preempt } : {}),
          ...(options.capacity_weights ? { capacity_weight: options.capacity_weights[i] } : {}),
        },
        ...(options.replication_factor !== undefined
          ? { snapshots: { ...config.snapshots, replication_factor: options.replication_factor } }
          : {}),
        ...(options.front_door
          ? {
              front_door: {
                bind: frontDoorHost(i),
                ports: { [options.front_door.port_name ?? 'smtp']: front_door_port },
                ...(options.front_door.hold_ms !== undefined ? { hold_ms: options.front_door.hold_ms } : {}),
                ...(options.front_door.dns_name
                  ? { dns: { name: options.front_door.dns_name, port: front_door_port + 1 } }
                  : {}),
                ...(options.front_door.max_held !== undefined
                  ? { max_held: options.front_door.max_held }
                  : {}),
              },
            }
          : {}),
      })
      await writeFileAtomic(path, stringify(tuned), { mode: 0o600 })
      const args = [path, '--json', ...(options.join_args?.(i) ?? [])]
      const front_door = options.front_door
        ? {
            host: frontDoorHost(i),
            port: front_door_port,
            dns_port: options.front_door.dns_name ? front_door_port + 1 : null,
          }
        : null
      this.nodes.push(new LocalNode(i, name, data_dir, tuned.service!.port, args, front_door))
    }
    for (const node of this.nodes) node.start()
  }

  /** The node that serves with a healthy service, as the nodes themselves report it. */
  async server(timeout_ms: number): Promise<LocalNode> {
    const deadline = Date.now() + timeout_ms
    for (let attempt = 0; Date.now() < deadline && attempt < 10_000; attempt++) {
      for (const node of this.nodes) {
        if (!node.running) continue
        const status = await node.status(1000)
        if (status?.node.role === 'server' && status.node.health === 'ok') return node
      }
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
    throw new Error(`no healthy server within ${timeout_ms} ms`)
  }

  /** First matching record from any of `nodes`; the other nodes stop listening at once. */
  static async first(
    nodes: LocalNode[],
    match: (record: LogRecord) => boolean,
    timeout_ms: number,
    what: string,
  ): Promise<{ node: LocalNode; record: LogRecord }> {
    const abort = new AbortController()
    try {
      return await Promise.any(
        nodes.map(async (node) => ({
          node,
          record: await node.waitFor(match, timeout_ms, what, abort.signal),
        })),
      )
    } catch {
      throw new Error(`timed out after ${timeout_ms} ms waiting for ${what} on any node`)
    } finally {
      abort.abort()
    }
  }

  /** Ctrl-C or SIGTERM of the orchestrator stops every process it started before it exits. */
  stopOnSignals(): () => void {
    const handler = (signal: NodeJS.Signals) => {
      void this.stop().finally(() => process.exit(signal === 'SIGINT' ? 130 : 143))
    }
    process.once('SIGINT', handler)
    process.once('SIGTERM', handler)
    return () => {
      process.off('SIGINT', handler)
      process.off('SIGTERM', handler)
    }
  }

  /** Stops every process this federation started (nodes first, then the testnet), by PID. */
  async stop(): Promise<void> {
    for (const node of this.nodes) {
      if (!node.running) continue
      node.signal('SIGCONT')
      node.signal('SIGTERM')
    }
    await Promise.all(
      this.nodes.map(async (node) => {
        try {
          await node.waitExit(5000)
        } catch {
          node.signal('SIGKILL')
          await node.waitExit(5000).catch(() => {})
        }
      }),
    )
    if (this.testnet && this.testnet.exitCode === null) {
      this.testnet.kill('SIGTERM')
      await withTimeout(once(this.testnet, 'exit'), 5000, 'the testnet to exit').catch(() =>
        this.testnet?.kill('SIGKILL'),
      )
    }
  }
}
