/**
 * bench:types (issue 19): what exists of service types, capacity election and r-way replication.
 * - capacity: 2-node federations of equal priority, strategy capacity, one node declaring 8 times the
 *   capacity of the other (alternating which): how often the stronger one is elected. Both nodes run on
 *   this one machine, so the machine-wide load figure cannot tell them apart: "loaded" is the declared
 *   weight, not another process (ARCHITECTURE.md, Not yet).
 * - rway: N nodes with snapshots.replication_factor r and the mail service; incompressible mail, one
 *   snapshot; bytes each share holder's overlay store grew by, against the state image; then the server
 *   and r - 1 other holders are SIGKILLed and the time until the successor answers is taken; verified:
 *   the successor's mailbox is byte-identical to the killed server's.
 * - type0: 3 nodes running examples/replica-http with `replicas` 1, 2 and 3; CONCURRENCY clients on
 *   this machine send GETs (each on a new connection) to node 0's front door for a fixed time:
 *   requests per second and the latency tail, and how many each replica answered. All nodes, services
 *   and clients share this machine's 2 cores, so more replicas add no CPU: the figure is the front
 *   door's cost and its spreading, not the scaling a federation of separate PCs would show.
 *
 * Usage: npm run bench:types [-- --quick] [-- --nodes N] [-- --capacity-runs N]
 *   (quick: 4 nodes, 2 capacity runs, r = 2 only, 5 s of load per replica count; default: 10 nodes,
 *   10 capacity runs, r = 2 and 3, 10 s of load)
 */
import { randomBytes } from 'node:crypto'
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { sendMail } from '../examples/mail/smtp-client.ts'
import { LocalFederation, type LocalFederationOptions, type LogRecord } from '../src/demo/local-federation.ts'
import { getReplica, replicaServiceDir } from '../src/demo/replica-http.ts'
import { controlRequest } from '../src/runtime/control-client.ts'
import { nodePaths } from '../src/runtime/paths.ts'
import { keepRun } from './lib/results-file.ts'
import { benchCommand, type RunMeta, startRun } from './lib/run-meta.ts'
import { renderResults } from './render/results-md.ts'
import type { RwayCase, Type0Case, TypesRun } from './render/types.ts'

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    nodes: { type: 'string' },
    'capacity-runs': { type: 'string' },
    /** Trying one part: only the Type0 figures, printed and not kept (types.json keeps whole runs). */
    'type0-only': { type: 'boolean', default: false },
  },
})
const QUICK = values.quick === true
const CAPACITY_RUNS = values['capacity-runs'] !== undefined ? Number(values['capacity-runs']) : QUICK ? 2 : 10
if (!Number.isInteger(CAPACITY_RUNS) || CAPACITY_RUNS < 1)
  throw new Error(`--capacity-runs must be a positive integer, got ${values['capacity-runs']}`)
const NODES = values.nodes !== undefined ? Number(values.nodes) : QUICK ? 4 : 10
const FACTORS = QUICK ? [2] : [2, 3]
const MAILS = QUICK ? 4 : 8
if (!Number.isInteger(NODES) || NODES < 3 || NODES > 16)
  throw new Error(`--nodes must be 3-16, got ${values.nodes}`)
const LOAD_MS = QUICK ? 5000 : 10_000
const CONCURRENCY = 8
const REPLICA_COUNTS = [1, 2, 3]
for (const r of FACTORS) if (r >= NODES) throw new Error(`r = ${r} needs more than ${NODES} nodes`)

const since =
  (name: string, after_ms: number, extra: (r: LogRecord) => boolean = () => true) =>
  (r: LogRecord) =>
    r.event === name && Number(r.time) >= after_ms && extra(r)

/** Bytes of every file under `dir` (what a node's overlay store takes on disk). */
async function dirBytes(dir: string): Promise<number> {
  let total = 0
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => [])
  for (const e of entries) {
    if (!e.isFile()) continue
    total += (await stat(join(e.parentPath, e.name)).catch(() => ({ size: 0 }))).size
  }
  return total
}

/** One federation for `run`, always stopped and its directory removed (also on SIGINT/SIGTERM). */
async function withFederation<T>(
  options: Omit<LocalFederationOptions, 'dir'>,
  run: (fed: LocalFederation) => Promise<T>,
): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'sustain-bench-types-'))
  const fed = new LocalFederation({ dir, ...options })
  const release = fed.stopOnSignals()
  try {
    await fed.start()
    return await run(fed)
  } finally {
    release()
    await fed.stop()
    await rm(dir, { recursive: true, force: true })
  }
}

async function capacityRun(i: number): Promise<boolean> {
  const stronger = i % 2
  const weights = stronger === 0 ? [8, 1] : [1, 8]
  return withFederation(
    {
      nodes: 2,
      priorities: [10, 10],
      strategy: 'capacity',
      capacity_weights: weights,
      snapshot_interval_ms: 60_000,
    },
    async (fed) => (await fed.server(120_000)).index === stronger,
  )
}

async function rwayCase(nodes: number, r: number): Promise<RwayCase> {
  return withFederation({ nodes, snapshot_interval_ms: 60_000, replication_factor: r }, async (fed) => {
    const server = await fed.server(180_000)
    await server.waitFor((e) => e.event === 'driver' && e.kind === 'answering', 60_000, 'answering')
    const others = fed.nodes.filter((n) => n !== server)
    const before = await Promise.all(others.map((n) => dirBytes(nodePaths(n.data_dir).overlay)))
    // Incompressible bodies of ~850 KB (lines of 64 hex characters), so the snapshot has several chunks.
    for (let m = 0; m < MAILS; m++) {
      const text = `${Array.from({ length: 13_000 }, () => randomBytes(32).toString('hex')).join('\n')}\nrway-${m}\n`
      await sendMail({
        port: server.port,
        from: 'a@example.org',
        to: ['alice@example.org'],
        subject: `r${m}`,
        text,
      })
    }
    const asked_ms = Date.now()
    await controlRequest(nodePaths(server.data_dir).socket, { cmd: 'snapshot' }, () => {})
    const taken = await server.waitFor(since('snapshot_taken', asked_ms), 60_000, 'snapshot taken')
    await Promise.all(
      others.map((n) =>
        n.waitFor(
          since('snapshot_share_held', asked_ms, (e) => e.id === taken.id),
          180_000,
          'share',
        ),
      ),
    )
    const after = await Promise.all(others.map((n) => dirBytes(nodePaths(n.data_dir).overlay)))
    const grew = after.map((a, i) => a - before[i]!)
    const image_bytes = await dirBytes(nodePaths(server.data_dir).service_state)
    const mailbox = await server.mailbox('alice')
    // The server and r - 1 holders die; the successor (the highest priority left: node 1, as the server
    // is node 0) is kept, so the dead are the lowest-priority nodes.
    const victims = [server, ...others.slice(-(r - 1))]
    const killed_ms = Date.now()
    for (const v of victims) v.signal('SIGKILL')
    const survivors = fed.nodes.filter((n) => !victims.includes(n))
    const { node: successor, record } = await LocalFederation.first(
      survivors,
      since('service_answering', killed_ms),
      180_000,
      'the successor answers',
    )
    const restored = await successor.mailbox('alice')
    return {
      nodes,
      r,
      bytes_per_node: Math.round(grew.reduce((s, g) => s + g, 0) / grew.length),
      bytes_per_node_max: Math.max(...grew),
      image_bytes,
      restore_ms: Number(record.time) - killed_ms,
      verified: restored === mailbox && mailbox.length > 0,
      killed: victims.length,
    }
  })
}

/** Nearest-rank percentile of sorted samples. */
function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!
}

/** `replicas` copies of the stateless HTTP example on 3 nodes, loaded through node 0's front door. */
async function type0Case(replicas: number, scratch: string): Promise<Type0Case> {
  const service_dir = await replicaServiceDir(join(scratch, `replica-http-${replicas}`), replicas)
  return withFederation({ nodes: 3, service_dir, front_door: { port_name: 'http' } }, async (fed) => {
    const entry = fed.nodes[0]!
    const door = entry.front_door!
    const deadline = Date.now() + 180_000
    for (let i = 0; i < 10_000 && Date.now() < deadline; i++) {
      const s = await entry.status(1000)
      if (s?.replica?.servers.length === replicas && s.replica.serving) break
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
    // Warm-up: every replica answers once before the clock starts (a process's first answers are slow).
    for (let i = 0; i < 3 * replicas; i++) await getReplica(door.host, door.port, 10_000)
    const latencies: number[] = []
    const by_port = new Map<number, number>()
    let failed = 0
    const started = performance.now()
    const end = started + LOAD_MS
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        for (let i = 0; i < 1_000_000 && performance.now() < end; i++) {
          const t0 = performance.now()
          try {
            const port = await getReplica(door.host, door.port, 10_000)
            latencies.push(performance.now() - t0)
            by_port.set(port, (by_port.get(port) ?? 0) + 1)
          } catch {
            failed++
          }
        }
      }),
    )
    const elapsed_ms = performance.now() - started
    latencies.sort((a, b) => a - b)
    return {
      replicas,
      requests_per_s: Math.round((latencies.length / elapsed_ms) * 1000),
      p99_ms: Math.round(percentile(latencies, 99) * 10) / 10,
      p50_ms: Math.round(percentile(latencies, 50) * 10) / 10,
      samples: latencies.length,
      failed,
      concurrency: CONCURRENCY,
      duration_ms: Math.round(elapsed_ms),
      by_replica: fed.nodes.map((n) => by_port.get(n.port) ?? 0),
    }
  })
}

const TYPE0_ONLY = values['type0-only'] === true
const finish = startRun(benchCommand('bench:types'), CAPACITY_RUNS)
let chose_unloaded = 0
for (let i = 0; i < (TYPE0_ONLY ? 0 : CAPACITY_RUNS); i++) {
  const ok = await capacityRun(i)
  if (ok) chose_unloaded++
  process.stderr.write(
    `capacity run ${i + 1}/${CAPACITY_RUNS}: ${ok ? 'stronger elected' : 'WEAKER elected'} (load ${loadavg()[0]!.toFixed(1)})\n`,
  )
}
const rway: RwayCase[] = []
for (const r of TYPE0_ONLY ? [] : FACTORS) {
  const c = await rwayCase(NODES, r)
  rway.push(c)
  process.stderr.write(
    `rway ${NODES} nodes r=${r}: ${JSON.stringify(c)} (load ${loadavg()[0]!.toFixed(1)})\n`,
  )
}
const type0: Type0Case[] = []
const scratch = await mkdtemp(join(tmpdir(), 'sustain-bench-type0-'))
try {
  for (const replicas of REPLICA_COUNTS) {
    const c = await type0Case(replicas, scratch)
    type0.push(c)
    process.stderr.write(
      `type0 replicas=${replicas}: ${JSON.stringify(c)} (load ${loadavg()[0]!.toFixed(1)})\n`,
    )
  }
} finally {
  await rm(scratch, { recursive: true, force: true })
}
const run: TypesRun & RunMeta = {
  quick: QUICK,
  type0,
  capacity: { runs: CAPACITY_RUNS, chose_unloaded, loaded_by: 'declared capacity_weight 8 vs 1' },
  rway,
  ...finish(),
}
if (TYPE0_ONLY) process.stdout.write(`${JSON.stringify(run.type0, null, 2)}\n(not kept: --type0-only)\n`)
else {
  await keepRun('types.json', run)
  await renderResults()
}
