/**
 * Overlay benchmark (issue 4). Run inside the loopback-only namespace:
 *   bash test/loopback-only.sh npx tsx bench/overlay.ts [--quick] [--only replication,detection,bulk,resets,false,control [--merge]]
 *   [--merge-logged FILE]
 * Keeps the run in bench/results/overlay.json (earlier runs kept) and regenerates bench/RESULTS.md
 * (bench/render/overlay.ts). A run with --only prints its figures and writes nothing; with --merge too,
 * its phases replace theirs in a copy of the newest run, kept as a new run that says which phases were
 * re-run and which run the others come from. Each figure records the 1-minute load average when its
 * phase started: other engineers share the machine.
 */
import assert from 'node:assert/strict'
import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { createServer, connect as tcpConnect } from 'node:net'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { type LocalTestnet, startTestnet } from '../overlay/testnet.ts'
import { DEFAULT_CHUNK_BYTES as SUSTAIN_BLOCK_BYTES } from '../snapshot/limits.ts'
import { forSnapshotTraffic } from '../src/util/process-settings.ts'
import { Cluster, type NodeEvent, type NodeProc, withTimeout } from '../test/overlay/harness.ts'
import { resetTcpOf } from '../test/overlay/reset-tcp.ts'
import { allRuns, keepRun, readResults } from './lib/results-file.ts'
import { benchCommand, type RunMeta, startRun } from './lib/run-meta.ts'
import { rotation } from './lib/stats.ts'
import type { OverlayRun } from './render/overlay.ts'
import { renderResults } from './render/results-md.ts'

const quick = process.argv.includes('--quick')
const onlyArg = process.argv.indexOf('--only')
const only = onlyArg >= 0 ? new Set((process.argv[onlyArg + 1] ?? '').split(',')) : null
const merge = process.argv.includes('--merge')
assert(!merge || only !== null, '--merge goes with --only')
const runs = (section: string) => only === null || only.has(section)
/** --phi-min-std N: every node's detector floors its standard deviation at N ms (a trial; never written). */
const phiArg = process.argv.indexOf('--phi-min-std')
const phi_min_std = phiArg >= 0 ? Number(process.argv[phiArg + 1]) : null
assert(
  phi_min_std === null || (phi_min_std > 0 && only !== null && !merge),
  '--phi-min-std N > 0, with --only and without --merge',
)
const phi = phi_min_std === null ? {} : { phi: { min_std_dev_ms: phi_min_std } }
const MiB = 1024 * 1024
const REPLICATION_BYTES = (quick ? 64 : 256) * MiB
const DETECTION_RUNS = quick ? 5 : 20
const FALSE_SUSPICION_MS = (quick ? 30 : 120) * 1000
const CONTROL_WINDOW_MS = (quick ? 5 : 10) * 1000
const CANDIDATES = 3
const BULK_DETECTION_RUNS = quick ? 2 : 5
/** Connection resets injected on a healthy server's lanes: for this long, a round every RESET_EVERY_MS. */
const RESETS_MS = (quick ? 10 : 30) * 1000
const RESET_EVERY_MS = 500
const REPLICATION_ROUNDS = quick ? 1 : 5
const NAIVE_WRITER = fileURLToPath(new URL('../test/overlay/fixtures/naive-writer.ts', import.meta.url))
const NAIVE_READER = fileURLToPath(new URL('../test/overlay/fixtures/naive-reader.ts', import.meta.url))
const now_wall = () => performance.timeOrigin + performance.now()
const round = (x: number, digits = 1) => Math.round(x * 10 ** digits) / 10 ** digits
/** 1-minute load average now. */
const load1 = () => round(loadavg()[0]!, 2)

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? Number.NaN
}

function log(msg: string): void {
  process.stderr.write(`[bench:overlay] ${msg}\n`)
}

// ---- replication -----------------------------------------------------------------------------------

/** Reasons of the false peer-downs (suspected, closed, rejected) seen by downsSince. */
const falseDownReasons: Record<string, number> = {}

/** Peer-down events seen by `nodes` since `marks`: during replication every one is a false suspicion. */
function downsSince(nodes: NodeProc[], marks: number[]): number {
  const downs = nodes.flatMap((n, i) => n.events.slice(marks[i]).filter((e) => e.event === 'peer-down'))
  for (const d of downs) falseDownReasons[d['reason']] = (falseDownReasons[d['reason']] ?? 0) + 1
  return downs.length
}

let replicationFalseSuspicions = 0

/** One overlay replication trial. */
interface ReplicationTrial {
  mb_per_s: number
  /** Blocks uploaded per block downloaded: above 1, blocks travelled more than once. */
  uploads_per_download: number
  /** CPU of every node (all threads) per MiB delivered, from the first candidate learning of it. */
  cpu_ms_per_mib: number
  /** CPU of every node over the same window, in cores (of the machine's 2): near 2, the cores are the bound. */
  cores_busy: number
  /** Longest main-thread event-loop stall of any node (the control plane has a thread of its own). */
  loop_delay_max_ms: number
  /** The data connections at the end, over all nodes: on TCP lanes / on the hyperswarm data plane. */
  lanes: number
  planes: number
}
/** Peer-down events during the bulk-detection runs before the fault (publish and transfer). */
let bulkFalseSuspicions = 0

/** `lane` false: the snapshot data travels on the hyperswarm data plane (UDX), as where TCP is blocked. */
async function overlayReplication(
  testnet: LocalTestnet,
  readers: number,
  lane = true,
): Promise<ReplicationTrial> {
  const cluster = await Cluster.create(testnet.bootstrap)
  try {
    // Candidates are members already, connected to the server (on their lanes where they have them)
    // when it publishes, as in a running federation; they start reading once the publish is whole and
    // announced, all within one heartbeat. The plain-hypercore reader likewise connects first.
    const server = cluster.spawn('server', { priority: 100, lane })
    const candidates = Array.from({ length: readers }, (_, i) => cluster.spawn(`c${i}`, { lane }))
    const all = [server, ...candidates]
    await cluster.ready(all)
    await cluster.meshed(all, 60_000)
    if (lane) await Promise.all(candidates.map((c) => c.laneTo(server)))
    const marks = all.map((n) => n.events.length)
    await Promise.all(all.map((n) => n.request('stats'))) // restarts each node's event-loop delay record
    await server.request('publish', { id: 'bench', size_bytes: REPLICATION_BYTES }, 300_000)
    const seen = await Promise.all(
      candidates.map((c) => c.waitFor((e) => e.event === 'snapshot' && e.id === 'bench', 60_000, 'snapshot')),
    )
    const before = await Promise.all(all.map((n) => n.request('stats', { reset: false })))
    const window_start_ms = performance.now()
    const held = await Promise.all(
      candidates.map((c) =>
        c.waitFor((e) => e.event === 'snapshot-held' && e.id === 'bench', 600_000, 'held'),
      ),
    )
    replicationFalseSuspicions += downsSince(all, marks)
    const start = Math.min(...seen.map((e) => e['at_ms']))
    const end = Math.max(...held.map((e) => e['at_ms']))
    // Blocks uploaded per block downloaded: above 1, peers sent blocks the receiver already had
    // (hypercore re-requests in-flight blocks from idle peers, "hotswap").
    const stats = await Promise.all(all.map((n) => n.request('stats')))
    const window_ms = performance.now() - window_start_ms
    const sum = (f: string) => stats.reduce((total, st) => total + st[f], 0)
    const cpu_ms = stats.reduce((total, st, i) => total + st['cpu_ms'] - before[i]['cpu_ms'], 0)
    return {
      mb_per_s: (readers * REPLICATION_BYTES) / MiB / ((end - start) / 1000),
      uploads_per_download: round(sum('uploads') / Math.max(1, sum('downloads')), 2),
      cpu_ms_per_mib: round(cpu_ms / ((readers * REPLICATION_BYTES) / MiB)),
      cores_busy: round(cpu_ms / window_ms, 2),
      loop_delay_max_ms: round(Math.max(...stats.map((st) => st['loop_delay_max_ms']))),
      lanes: stats.reduce((n, st) => n + st['data_transports'].lane, 0),
      planes: stats.reduce((n, st) => n + st['data_transports'].plane, 0),
    }
  } finally {
    await cluster.cleanup()
  }
}

async function tcpCopy(): Promise<number> {
  const chunk = Buffer.alloc(MiB, 7)
  const server = createServer((socket) => {
    let received = 0
    socket.on('data', (d: Buffer) => {
      received += d.byteLength
      if (received >= REPLICATION_BYTES) socket.end()
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as { port: number }
  const socket = tcpConnect(port, '127.0.0.1')
  await once(socket, 'connect')
  const start = performance.now()
  for (let sent = 0; sent < REPLICATION_BYTES; sent += MiB) {
    if (!socket.write(chunk)) await once(socket, 'drain')
  }
  await once(socket, 'end')
  const elapsed_s = (performance.now() - start) / 1000
  socket.destroy()
  server.close()
  return REPLICATION_BYTES / MiB / elapsed_s
}

/**
 * Plain hypercore, writer and reader each in a process of its own. `tuned`: both start with the process
 * settings Sustain's nodes get (src/util/process-settings.ts: heap flags, malloc settings, hardware
 * crc32c), to show what they are worth on their own; otherwise with node's and glibc's defaults.
 */
interface NaiveOptions {
  tuned?: boolean
  /** Hypercore block size; hypercore's usual 64 KiB unless given (Sustain publishes 1 MiB blocks). */
  block_bytes?: number
  /** `swarm`: hyperswarm (UDX); `tcp`: Noise over a loopback TCP connection, as Sustain's data lane. */
  transport?: 'swarm' | 'tcp'
}

async function naiveHypercore(testnet: LocalTestnet, options: NaiveOptions = {}): Promise<number> {
  const { tuned = false, block_bytes = 64 * 1024, transport = 'swarm' } = options
  const dir = await mkdtemp(join(tmpdir(), 'sustain-naive-'))
  const { GLIBC_TUNABLES: _, LD_PRELOAD: __, ...plain } = process.env
  const { args: node_args, env } = tuned
    ? forSnapshotTraffic(['--import', 'tsx'], plain)
    : { args: ['--import', 'tsx'], env: plain }
  const bootstrap = JSON.stringify(testnet.bootstrap)
  const writer = spawn(
    process.execPath,
    [
      ...node_args,
      NAIVE_WRITER,
      join(dir, 'w'),
      bootstrap,
      String(REPLICATION_BYTES),
      String(block_bytes),
      transport,
    ],
    { stdio: ['pipe', 'pipe', 'inherit'], env },
  )
  let reader: ChildProcess | null = null
  try {
    /** The first line a child prints, as JSON. */
    const line = async (child: ChildProcess, what: string) => {
      const lines = createInterface({ input: child.stdout! })
      const [text] = (await withTimeout(once(lines, 'line'), 600_000, what)) as [string]
      return JSON.parse(text)
    }
    const { key, length, port } = (await line(writer, 'naive writer ready')) as {
      key: string
      length: number
      port: number
    }
    reader = spawn(
      process.execPath,
      [...node_args, NAIVE_READER, join(dir, 'r'), bootstrap, key, String(length), String(port)],
      { stdio: ['ignore', 'pipe', 'inherit'], env },
    )
    const { ms } = (await line(reader, 'naive download')) as { ms: number }
    return REPLICATION_BYTES / MiB / (ms / 1000)
  } finally {
    if (reader && reader.exitCode === null) {
      await withTimeout(once(reader, 'exit'), 10_000, 'naive reader exit').catch(() =>
        reader?.kill('SIGKILL'),
      )
    }
    writer.stdin!.end()
    await withTimeout(once(writer, 'exit'), 10_000, 'naive writer exit').catch(() => writer.kill('SIGKILL'))
    await rm(dir, { recursive: true, force: true })
  }
}

// ---- detection -------------------------------------------------------------------------------------

/** Causes of a server's end the detection phase measures (the network cut is the fault lab's). */
const CAUSES = ['sigkill', 'sigterm', 'uncaught', 'sigstop'] as const
type Cause = (typeof CAUSES)[number]
/** One candidate's detection: ms from the fault, and what told it (peer-down reason, or resign). */
type Detected = { ms: number; path: string }

/** The candidate's first sign that `server` went: a peer-down (its reason) or the server's resign. */
const detectedBy = (server: NodeProc) => (e: NodeEvent) =>
  (e.event === 'peer-down' && e.key === server.key) ||
  (e.event === 'message' && e.from === server.key && e.msg?.type === 'resign')

async function detection(
  cluster: Cluster,
  candidates: NodeProc[],
  cause: Cause,
  run: number,
): Promise<Detected[]> {
  // A group of its own: SIGKILL hits the server's process group, as a crash of the node and its service.
  const server = cluster.spawn(`${cause}-${run}`, { priority: 100, ...phi }, { detached: true })
  await cluster.ready([server], 60_000)
  await cluster.meshed([server, ...candidates], 60_000)
  await Promise.all(candidates.map((c) => c.laneTo(server)))
  // ~1 s of heartbeat history on every candidate first: 4 suspicion reports (every 250 ms) about the
  // server. Each wait starts after the previous report (other peers' reports are interleaved).
  await Promise.all(
    candidates.map(async (c) => {
      let from = c.events.length
      for (let i = 0; i < 4; i++) {
        const report = await c.waitFor(
          (e) => e.event === 'peer-suspicion' && e.key === server.key,
          5000,
          'report',
          from,
        )
        from = c.events.indexOf(report, from) + 1
      }
    }),
  )
  // What carries each candidate's data to the server at the fault (only a lane gives connection events).
  const transports = await Promise.all(candidates.map((c) => c.request('transport', { key: server.key })))
  const marks = candidates.map((c) => c.events.length)
  const fault_ms = now_wall()
  if (cause === 'sigkill') process.kill(-server.child.pid!, 'SIGKILL')
  else if (cause === 'sigterm') server.child.kill('SIGTERM')
  else if (cause === 'sigstop') server.child.kill('SIGSTOP')
  else void server.request('throw').catch(() => {})
  const seen = await Promise.all(
    candidates.map((c, i) => c.waitFor(detectedBy(server), 20_000, `${cause} detected`, marks[i])),
  )
  if (cause === 'sigstop') server.child.kill('SIGKILL')
  await server.exited
  cluster.nodes.splice(cluster.nodes.indexOf(server), 1)
  if (cause === 'sigkill' && seen.some((e) => e['reason'] !== 'gone')) {
    // Why the connection events did not find it: each candidate's lane verdicts about the server.
    const verdicts = candidates.map((c, i) =>
      c.events
        .slice(marks[i])
        .filter((e) => e.event === 'lane-ended' && e.key === server.key)
        .map((e) => `${e['verdict']}/${e['redial']}/${e['dials']}@${round(e['at_ms'] - fault_ms)}`),
    )
    log(
      `sigkill run ${run} found by silence; data transport at the fault ${JSON.stringify(transports)}, lane verdicts per candidate: ${JSON.stringify(verdicts)}`,
    )
  }
  // Times are the candidates' own stamps (wall clock, comparable across processes on this host).
  return seen.map((e) => ({
    ms: e['at_ms'] - fault_ms,
    path: e.event === 'message' ? 'resign' : String(e['reason']),
  }))
}

// ---- false suspicions while a healthy server's lanes are reset from outside ------------------------

async function falseOnResets(testnet: LocalTestnet) {
  const cluster = await Cluster.create(testnet.bootstrap)
  try {
    const server = cluster.spawn('server', { priority: 100 })
    const candidates = [1, 2, 3].map((i) => cluster.spawn(`c${i}`))
    await cluster.ready([server, ...candidates], 60_000)
    await cluster.meshed([server, ...candidates], 60_000)
    await Promise.all(candidates.map((c) => c.laneTo(server)))
    const marks = candidates.map((c) => c.events.length)
    const load_before = load1()
    let resets = 0
    let rounds = 0
    const end = performance.now() + RESETS_MS
    while (performance.now() < end) {
      resets += resetTcpOf(server.child.pid!)
      rounds++
      await new Promise((r) => setTimeout(r, RESET_EVERY_MS))
    }
    // One more second of heartbeats after the last reset: a late verdict counts too.
    await new Promise((r) => setTimeout(r, 1000))
    const after = candidates.map((c, i) => c.events.slice(marks[i]))
    const downs = after.flat().filter((e) => e.event === 'peer-down' && e.key === server.key)
    const verdicts: Record<string, number> = {}
    for (const e of after.flat().filter((x) => x.event === 'lane-ended' && x.key === server.key))
      verdicts[e['verdict']] = (verdicts[e['verdict']] ?? 0) + 1
    return {
      false_on_resets: downs.length,
      reasons: downs.map((d) => d['reason']),
      window_s: RESETS_MS / 1000,
      reset_rounds: rounds,
      connections_reset: resets,
      lane_verdicts: verdicts,
      load_before,
      load_after: load1(),
    }
  } finally {
    await cluster.cleanup()
  }
}

/**
 * Detection while the server is sending a snapshot to every candidate: heartbeats share the connection
 * with bulk replication (holepunch.md §4: head-of-line blocking), so they arrive later and more jittery.
 */
async function bulkDetection(testnet: LocalTestnet, signal: 'SIGKILL' | 'SIGSTOP'): Promise<number[]> {
  const cluster = await Cluster.create(testnet.bootstrap)
  try {
    const server = cluster.spawn('server', { priority: 100 })
    const candidates = Array.from({ length: CANDIDATES }, (_, i) => cluster.spawn(`c${i}`))
    await cluster.ready([server, ...candidates])
    await cluster.meshed([server, ...candidates])
    const before = [server, ...candidates].map((n) => n.events.length)
    await server.request('publish', { id: 'bulk', size_bytes: REPLICATION_BYTES }, 300_000)
    await Promise.all(
      candidates.map((c) => c.waitFor((e) => e.event === 'snapshot' && e.id === 'bulk', 60_000, 'snapshot')),
    )
    // Into the transfer, and still transferring: nobody holds the snapshot yet.
    await new Promise((r) => setTimeout(r, 500))
    const held = candidates.filter((c) => c.events.some((e) => e.event === 'snapshot-held'))
    if (held.length > 0) log(`bulk detection: ${held.length} candidates finished before the fault`)
    const marks = candidates.map((c) => c.events.length)
    bulkFalseSuspicions += downsSince([server, ...candidates], before)
    const fault_ms = now_wall()
    server.child.kill(signal)
    const downs = await Promise.all(
      candidates.map((c, i) =>
        c.waitFor((e) => e.event === 'peer-down' && e.key === server.key, 20_000, 'down', marks[i]),
      ),
    )
    if (signal === 'SIGSTOP') server.child.kill('SIGKILL')
    return downs.map((d) => d['at_ms'] - fault_ms)
  } finally {
    await cluster.cleanup()
  }
}

// ---- false suspicions under CPU saturation ---------------------------------------------------------

async function falseSuspicions(testnet: LocalTestnet): Promise<{ count: number; reports: number }> {
  const cluster = await Cluster.create(testnet.bootstrap)
  const burners: ChildProcess[] = []
  try {
    const nodes = [
      cluster.spawn('server', { priority: 100, ...phi }),
      ...[1, 2, 3].map((i) => cluster.spawn(`c${i}`, phi)),
    ]
    await cluster.ready(nodes, 60_000)
    await cluster.meshed(nodes, 60_000)
    await nodes[0]!.request('state', { state: { role: 'server', term: 1 } })
    const marks = nodes.map((n) => n.events.length)
    for (let i = 0; i < 2; i++) {
      burners.push(spawn(process.execPath, ['-e', 'for(;;){}'], { stdio: 'ignore' }))
    }
    await withTimeout(
      new Promise((r) => setTimeout(r, FALSE_SUSPICION_MS)),
      FALSE_SUSPICION_MS + 1000,
      'window',
    )
    const downs = nodes.flatMap((n, i) => n.events.slice(marks[i]).filter((e) => e.event === 'peer-down'))
    const reports = nodes.reduce(
      (sum, n, i) => sum + n.events.slice(marks[i]).filter((e) => e.event === 'peer-suspicion').length,
      0,
    )
    return { count: downs.length, reports }
  } finally {
    for (const b of burners) b.kill('SIGKILL')
    await cluster.cleanup()
  }
}

// ---- control-plane bytes ---------------------------------------------------------------------------

async function controlBytes(testnet: LocalTestnet, size: number) {
  const cluster = await Cluster.create(testnet.bootstrap)
  try {
    const nodes = Array.from({ length: size }, (_, i) => cluster.spawn(`n${i}`))
    await cluster.ready(nodes, 120_000)
    await cluster.meshed(nodes, 120_000)
    const before = await Promise.all(nodes.map((n) => n.request('stats')))
    const start = performance.now()
    await new Promise((r) => setTimeout(r, CONTROL_WINDOW_MS))
    const after = await Promise.all(nodes.map((n) => n.request('stats')))
    const seconds = (performance.now() - start) / 1000
    const per = (f: string) =>
      after.reduce((sum, a, i) => sum + (a[f] - before[i][f]), 0) / nodes.length / seconds
    return {
      nodes: size,
      frame_bytes_sent_per_s: round(per('frame_bytes_sent')),
      wire_bytes_written_per_s: round(per('wire_bytes_written')),
      frames_sent_per_s: round(per('frames_sent')),
      control_wire_bytes_written_per_s: round(per('control_wire_bytes_written')),
    }
  } finally {
    await cluster.cleanup()
  }
}

// ---- main ------------------------------------------------------------------------------------------

async function writeResults(result: OverlayRun & RunMeta): Promise<void> {
  await keepRun('overlay.json', result)
  await renderResults()
}

function detectionSummary(samples: Record<'SIGKILL' | 'SIGSTOP', number[]>, runs: number, load_avg: number) {
  return {
    sigkill_p50_ms: round(percentile(samples.SIGKILL, 50)),
    sigkill_p99_ms: round(percentile(samples.SIGKILL, 99)),
    sigkill_max_ms: round(Math.max(...samples.SIGKILL)),
    sigstop_p50_ms: round(percentile(samples.SIGSTOP, 50)),
    sigstop_p99_ms: round(percentile(samples.SIGSTOP, 99)),
    sigstop_max_ms: round(Math.max(...samples.SIGSTOP)),
    runs,
    samples_per_signal: samples.SIGKILL.length,
    load_avg,
  }
}

const median = (values: number[]) => percentile(values, 50)
const range = (values: number[]) =>
  Math.min(...values) === Math.max(...values)
    ? `${Math.min(...values)}`
    : `${Math.min(...values)}-${Math.max(...values)}`

/**
 * TCP, plain hypercore, the overlay to 1 and to 4, interleaved for REPLICATION_ROUNDS rounds: the load
 * other engineers put on the machine drifts within minutes, and interleaving exposes every tool to the
 * same drift. Figures are medians of the rounds; each load average is the range over its trials.
 */
async function replicationPhase(testnet: LocalTestnet) {
  log(`replication of ${REPLICATION_BYTES / MiB} MiB, ${REPLICATION_ROUNDS} interleaved rounds`)
  const loads = {
    tcp: [] as number[],
    naive: [] as number[],
    naiveTuned: [] as number[],
    naiveBig: [] as number[],
    sameTransport: [] as number[],
    one: [] as number[],
    four: [] as number[],
    plane: [] as number[],
  }
  const tcp: number[] = []
  const naive: number[] = []
  const naiveTuned: number[] = []
  /** Plain hypercore with Sustain's block size and process settings: on hyperswarm, and on a lane's transport. */
  const naiveBig: number[] = []
  const sameTransport: number[] = []
  const one: ReplicationTrial[] = []
  const four: ReplicationTrial[] = []
  /** To 1 and to 4 with the lane off: the hyperswarm data plane alone. */
  const planeOne: ReplicationTrial[] = []
  const planeFour: ReplicationTrial[] = []
  /** One trial: the load when it starts, then its figure. */
  const trial =
    <T>(load: number[], into: T[], measure: () => Promise<T>) =>
    async () => {
      load.push(load1())
      into.push(await measure())
    }
  const lane_like = { tuned: true, block_bytes: SUSTAIN_BLOCK_BYTES, transport: 'tcp' } as const
  const trials = [
    trial(loads.tcp, tcp, () => tcpCopy()),
    trial(loads.naive, naive, () => naiveHypercore(testnet)),
    trial(loads.naiveTuned, naiveTuned, () => naiveHypercore(testnet, { tuned: true })),
    trial(loads.naiveBig, naiveBig, () =>
      naiveHypercore(testnet, { tuned: true, block_bytes: SUSTAIN_BLOCK_BYTES }),
    ),
    trial(loads.sameTransport, sameTransport, () => naiveHypercore(testnet, lane_like)),
    trial(loads.one, one, () => overlayReplication(testnet, 1)),
    trial(loads.four, four, () => overlayReplication(testnet, 4)),
    trial(loads.plane, planeOne, () => overlayReplication(testnet, 1, false)),
    trial([], planeFour, () => overlayReplication(testnet, 4, false)),
  ]
  for (let r = 0; r < REPLICATION_ROUNDS; r++) {
    // Every trial takes its turn to go first: none always meets the same drift of the machine's load.
    for (const run of rotation(trials, r)) await run()
    log(
      `round ${r + 1}: naive ${round(naive.at(-1)!)}, 1: ${JSON.stringify(one.at(-1))}, 4: ${JSON.stringify(four.at(-1))}, data plane 1: ${JSON.stringify(planeOne.at(-1))}, 4: ${JSON.stringify(planeFour.at(-1))}`,
    )
  }
  // Every connection of the lane trials was a lane, and none of the data-plane trials was.
  assert(
    [...one, ...four].every((t) => t.planes === 0 && t.lanes > 0),
    'a lane trial used the data plane',
  )
  assert(
    [...planeOne, ...planeFour].every((t) => t.lanes === 0 && t.planes > 0),
    'a data-plane trial used a lane',
  )
  const m = (trials: ReplicationTrial[], f: keyof ReplicationTrial) =>
    round(median(trials.map((t) => t[f])), 2)
  const mb_1 = median(one.map((t) => t.mb_per_s))
  const mb_4 = median(four.map((t) => t.mb_per_s))
  const mb_naive = median(naive)
  const mb_naive_tuned = median(naiveTuned)
  const mb_naive_big = median(naiveBig)
  const mb_same_transport = median(sameTransport)
  const mb_tcp = median(tcp)
  const plane_1 = median(planeOne.map((t) => t.mb_per_s))
  const plane_4 = median(planeFour.map((t) => t.mb_per_s))
  return {
    mb_per_s_1: round(mb_1),
    mb_per_s_4: round(mb_4),
    tcp_mb_per_s: round(mb_tcp),
    naive_hypercore_mb_per_s: round(mb_naive),
    naive_tuned_hypercore_mb_per_s: round(mb_naive_tuned),
    vs_naive_tuned_1: round(mb_1 / mb_naive_tuned, 2),
    // Like for like: plain hypercore with Sustain's block size, process settings and lane transport.
    naive_same_transport_mb_per_s: round(mb_same_transport),
    vs_naive_same_transport_1: round(mb_1 / mb_same_transport, 2),
    naive_big_blocks_mb_per_s: round(mb_naive_big),
    /** Each of Sustain's choices on its own: block size, then transport, then patches and the rest. */
    gain: {
      block_size: round(mb_naive_big / mb_naive_tuned, 2),
      transport: round(mb_same_transport / mb_naive_big, 2),
      patches_and_rest: round(mb_1 / mb_same_transport, 2),
    },
    vs_naive_1: round(mb_1 / mb_naive, 2),
    four_vs_one: round(mb_4 / mb_1, 2),
    fraction_of_tcp_1: round(mb_1 / mb_tcp, 3),
    uploads_per_download_1: m(one, 'uploads_per_download'),
    uploads_per_download_4: m(four, 'uploads_per_download'),
    cpu_ms_per_mib_1: m(one, 'cpu_ms_per_mib'),
    cpu_ms_per_mib_4: m(four, 'cpu_ms_per_mib'),
    cores_busy_1: m(one, 'cores_busy'),
    cores_busy_4: m(four, 'cores_busy'),
    loop_delay_max_ms_1: round(Math.max(...one.map((t) => t.loop_delay_max_ms))),
    loop_delay_max_ms_4: round(Math.max(...four.map((t) => t.loop_delay_max_ms))),
    data_plane_mb_per_s_1: round(plane_1),
    data_plane_mb_per_s_4: round(plane_4),
    data_plane_vs_naive_1: round(plane_1 / mb_naive, 2),
    data_plane_four_vs_one: round(plane_4 / plane_1, 2),
    rounds: {
      tcp: tcp.map((x) => round(x)),
      naive: naive.map((x) => round(x)),
      naive_tuned: naiveTuned.map((x) => round(x)),
      naive_big_blocks: naiveBig.map((x) => round(x)),
      naive_same_transport: sameTransport.map((x) => round(x)),
      one: one.map((t) => round(t.mb_per_s)),
      four: four.map((t) => round(t.mb_per_s)),
      data_plane_one: planeOne.map((t) => round(t.mb_per_s)),
      data_plane_four: planeFour.map((t) => round(t.mb_per_s)),
    },
    bytes: REPLICATION_BYTES,
    load_avg: {
      tcp: range(loads.tcp),
      naive: range(loads.naive),
      naive_tuned: range(loads.naiveTuned),
      naive_big_blocks: range(loads.naiveBig),
      naive_same_transport: range(loads.sameTransport),
      one: range(loads.one),
      four: range(loads.four),
      data_plane: range(loads.plane),
    },
  }
}

async function detectionPhase(testnet: LocalTestnet) {
  log(`detection, ${DETECTION_RUNS} runs per cause (${CAUSES.join(', ')})`)
  const load_before = load1()
  const cluster = await Cluster.create(testnet.bootstrap)
  const samples = Object.fromEntries(CAUSES.map((c) => [c, [] as Detected[]])) as Record<Cause, Detected[]>
  try {
    const candidates = Array.from({ length: CANDIDATES }, (_, i) => cluster.spawn(`c${i}`, phi))
    await cluster.ready(candidates, 60_000)
    await cluster.meshed(candidates, 60_000)
    for (let run = 0; run < DETECTION_RUNS; run++) {
      for (const cause of CAUSES) samples[cause].push(...(await detection(cluster, candidates, cause, run)))
      log(
        `run ${run + 1}: ${CAUSES.map(
          (c) =>
            `${c} ${samples[c]
              .slice(-CANDIDATES)
              .map((d) => `${round(d.ms)}/${d.path}`)
              .join(' ')}`,
        ).join('; ')}`,
      )
    }
  } finally {
    await cluster.cleanup()
  }
  const ms = (cause: Cause) => samples[cause].map((d) => d.ms)
  const figure = (cause: Cause, p: number) => round(percentile(ms(cause), p))
  const paths = Object.fromEntries(
    CAUSES.map((cause) => {
      const count: Record<string, number> = {}
      for (const d of samples[cause]) count[d.path] = (count[d.path] ?? 0) + 1
      return [cause, count]
    }),
  )
  return {
    sigkill_p50_ms: figure('sigkill', 50),
    sigkill_p99_ms: figure('sigkill', 99),
    sigkill_max_ms: figure('sigkill', 100),
    sigterm_p50_ms: figure('sigterm', 50),
    sigterm_p99_ms: figure('sigterm', 99),
    sigterm_max_ms: figure('sigterm', 100),
    uncaught_p50_ms: figure('uncaught', 50),
    uncaught_p99_ms: figure('uncaught', 99),
    uncaught_max_ms: figure('uncaught', 100),
    sigstop_p50_ms: figure('sigstop', 50),
    sigstop_p99_ms: figure('sigstop', 99),
    sigstop_max_ms: figure('sigstop', 100),
    cut_p99_ms: null,
    cut_note: "the server's network cut needs the fault lab (network namespaces): measured there, not here",
    // Fewer than 100 samples per cause: p99 is the second-highest or the highest sample; max says which.
    samples_per_cause: samples.sigkill.length,
    runs: DETECTION_RUNS,
    paths,
    load_avg: load_before,
    load_before,
    load_after: load1(),
  }
}

async function bulkDetectionPhase(testnet: LocalTestnet) {
  log(`detection during bulk replication, ${BULK_DETECTION_RUNS} runs per signal`)
  const load_avg = load1()
  const bulk: Record<'SIGKILL' | 'SIGSTOP', number[]> = { SIGKILL: [], SIGSTOP: [] }
  for (let run = 0; run < BULK_DETECTION_RUNS; run++) {
    for (const signal of ['SIGKILL', 'SIGSTOP'] as const)
      bulk[signal].push(...(await bulkDetection(testnet, signal)))
  }
  return {
    ...detectionSummary(bulk, BULK_DETECTION_RUNS, load_avg),
    false_suspicions_before_fault: bulkFalseSuspicions,
  }
}

/**
 * `--merge-logged FILE`: the phases a run printed (`[bench:overlay] KEY: {json}` lines of its stderr,
 * kept in FILE) replace theirs in a copy of the newest run, kept as a new run as `--only … --merge`
 * would have: for a run whose later phase failed after these were measured.
 */
async function mergeLogged(file: string): Promise<void> {
  const logged: Record<string, unknown> = {}
  for (const line of (await readFile(file, 'utf8')).split('\n')) {
    const m = /^\[bench:overlay\] (\w+): (\{.*\})$/.exec(line)
    if (m && m[1] !== 'false_down_reasons') logged[m[1]!] = JSON.parse(m[2]!)
  }
  assert(Object.keys(logged).length > 0, `no phase results in ${file}`)
  const previous = allRuns(await readResults<OverlayRun & Partial<RunMeta>>('overlay.json')).at(-1)
  assert(previous, '--merge-logged needs a previous run in bench/results/overlay.json')
  const { notes: _, rerun: __, ...base } = previous as OverlayRun & Partial<RunMeta> & { notes?: string[] }
  const meta = startRun(
    `${benchCommand('bench:overlay')} (phases from the log ${file})`,
    REPLICATION_ROUNDS,
  )()
  const rerun = {
    phases: Object.keys(logged),
    date: meta.date,
    base_date: previous.date,
    base_commit: previous.commit ?? null,
  }
  await writeResults({ ...base, ...(logged as Partial<OverlayRun>), ...meta, rerun })
  log(`merged ${Object.keys(logged).join(', ')} from ${file}`)
}

async function main(): Promise<void> {
  const logArg = process.argv.indexOf('--merge-logged')
  if (logArg >= 0) {
    await mergeLogged(process.argv[logArg + 1]!)
    return
  }
  const testnet = await startTestnet(5)
  const finish = startRun(benchCommand('bench:overlay'), REPLICATION_ROUNDS)
  const result: Record<string, any> = { quick }
  const phase = async (name: string, key: string, run: () => Promise<unknown>) => {
    if (!runs(name)) return
    result[key] = await run()
    log(`${key}: ${JSON.stringify(result[key])}`)
  }
  try {
    await phase('replication', 'replication', () => replicationPhase(testnet))
    if (runs('replication')) result['false_suspicions_during_replication'] = replicationFalseSuspicions
    await phase('detection', 'detection', () => detectionPhase(testnet))
    await phase('bulk', 'detection_during_replication', () => bulkDetectionPhase(testnet))
    await phase('resets', 'false_on_resets', async () => {
      log(`false suspicions while a healthy server's lanes are reset, ${RESETS_MS / 1000} s`)
      return falseOnResets(testnet)
    })
    await phase('false', 'false_suspicions', async () => {
      log(`false suspicions, ${FALSE_SUSPICION_MS / 1000} s with both cores saturated`)
      const load_avg = load1()
      const found = await falseSuspicions(testnet)
      return { ...found, window_s: FALSE_SUSPICION_MS / 1000, load_avg, load_after: load1() }
    })
    await phase('control', 'control', async () => {
      const control = []
      for (const size of [10, 30]) {
        log(`control-plane bytes, ${size} nodes`)
        const load_avg = load1()
        control.push({ ...(await controlBytes(testnet, size)), load_avg })
      }
      return control
    })
    // Reasons of the false peer-downs of the replication and bulk-detection runs.
    result['false_down_reasons'] = falseDownReasons
    const meta = finish()
    if (only === null) await writeResults({ ...(result as OverlayRun), ...meta })
    else if (merge) {
      const previous = allRuns(await readResults<OverlayRun & Partial<RunMeta>>('overlay.json')).at(-1)
      assert(previous, '--merge needs a previous run in bench/results/overlay.json')
      assert.equal(previous.quick, quick, '--merge needs previous results of the same --quick mode')
      const {
        notes: _,
        rerun: __,
        ...base
      } = previous as OverlayRun & Partial<RunMeta> & { notes?: string[] }
      const rerun = {
        phases: [...only],
        date: meta.date,
        base_date: previous.date,
        base_commit: previous.commit ?? null,
      }
      await writeResults({ ...base, ...(result as OverlayRun), ...meta, rerun })
    } else log(`--only: nothing written. ${JSON.stringify(result)}`)
  } finally {
    await testnet.destroy()
  }
}

await main()
