/**
 * Overlay benchmark (issue 4). Run inside the loopback-only namespace:
 *   bash test/loopback-only.sh npx tsx bench/overlay.ts [--quick] [--only replication,detection,bulk,resets,false,control [--merge]]
 * Writes bench/results/overlay.json and the `## Overlay` section of bench/RESULTS.md (a run with
 * --only prints its figures and writes nothing; with --merge too, its phases replace theirs in the
 * previous results, and the table says which phases were re-run). Each figure records the 1-minute load average when
 * its phase started: other engineers share the machine.
 */
import assert from 'node:assert/strict'
import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { createServer, connect as tcpConnect } from 'node:net'
import { cpus, loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { type LocalTestnet, startTestnet } from '../overlay/testnet.ts'
import { writeFileAtomic } from '../src/util/atomic-write.ts'
import { forSnapshotTraffic } from '../src/util/process-settings.ts'
import { Cluster, type NodeEvent, type NodeProc, withTimeout } from '../test/overlay/harness.ts'
import { resetTcpOf } from '../test/overlay/reset-tcp.ts'

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
const RESULTS_DIR = fileURLToPath(new URL('./results/', import.meta.url))
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
async function naiveHypercore(testnet: LocalTestnet, tuned = false): Promise<number> {
  const dir = await mkdtemp(join(tmpdir(), 'sustain-naive-'))
  const { GLIBC_TUNABLES: _, LD_PRELOAD: __, ...plain } = process.env
  const { args: node_args, env } = tuned
    ? forSnapshotTraffic(['--import', 'tsx'], plain)
    : { args: ['--import', 'tsx'], env: plain }
  const bootstrap = JSON.stringify(testnet.bootstrap)
  const writer = spawn(
    process.execPath,
    [...node_args, NAIVE_WRITER, join(dir, 'w'), bootstrap, String(REPLICATION_BYTES)],
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
    const { key, length } = (await line(writer, 'naive writer ready')) as { key: string; length: number }
    reader = spawn(
      process.execPath,
      [...node_args, NAIVE_READER, join(dir, 'r'), bootstrap, key, String(length)],
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

/** "gone 57, suspected 3": how the samples of one cause were found. */
const paths = (count: Record<string, number> | undefined) =>
  count
    ? Object.entries(count)
        .map(([path, n]) => `${path} ${n}`)
        .join(', ')
    : 'not recorded'

async function writeResults(result: Record<string, any>): Promise<void> {
  await writeFileAtomic(join(RESULTS_DIR, 'overlay.json'), `${JSON.stringify(result, null, 2)}\n`)
  const r = result['replication']
  const d = result['detection']
  const b = result['detection_during_replication']
  const f = result['false_suspicions']
  const rows = [
    '## Overlay',
    '',
    `\`npm run bench:overlay${quick ? ' -- --quick' : ''}\` on ${result['machine']}, ${result['date']}${result['rerun'] ? ` (phases ${result['rerun'].phases.join(', ')} re-run on ${result['rerun'].date} with \`--only … --merge\`)` : ''}, inside the loopback-only namespace. All processes share the cores; other engineers' work loads the machine too, so each figure shows the 1-minute load average when its phase started.`,
    '',
    '| metric | value | target | load avg |',
    '|---|---|---|---|',
    `| replication of ${REPLICATION_BYTES / MiB} MiB to 1 candidate | ${r.mb_per_s_1} MB/s (${r.vs_naive_1}x plain hypercore, ${r.fraction_of_tcp_1} of TCP) | >= 2x plain hypercore | ${r.load_avg.one} |`,
    `| replication to 4 candidates at once, aggregate | ${r.mb_per_s_4} MB/s (${r.four_vs_one}x the figure to 1; ${r.uploads_per_download_4} blocks uploaded per block downloaded, ${r.uploads_per_download_1} to 1) | >= the figure to 1 | ${r.load_avg.four} |`,
    `| CPU of all nodes per MiB delivered, to 1 / to 4 (cores they kept busy: ${r.cores_busy_1} / ${r.cores_busy_4} of ${cpus().length}) | ${r.cpu_ms_per_mib_1} / ${r.cpu_ms_per_mib_4} ms | not growing with fan-out | ${r.load_avg.one} / ${r.load_avg.four} |`,
    `| the same over the hyperswarm data plane only (lane off, as where TCP is blocked), to 1 / to 4 aggregate | ${r.data_plane_mb_per_s_1} / ${r.data_plane_mb_per_s_4} MB/s (${r.data_plane_vs_naive_1}x plain hypercore; to 4 ${r.data_plane_four_vs_one}x to 1) | — | ${r.load_avg.data_plane} |`,
    `| plain hypercore, default settings, 64 KiB blocks, 1 reader | ${r.naive_hypercore_mb_per_s} MB/s | baseline | ${r.load_avg.naive} |`,
    `| the same with the process settings Sustain's nodes start with (heap flags, malloc, crc32c) | ${r.naive_tuned_hypercore_mb_per_s} MB/s (the figure to 1 is ${r.vs_naive_tuned_1}x it) | — | ${r.load_avg.naive_tuned} |`,
    `| plain TCP copy over loopback | ${r.tcp_mb_per_s} MB/s | reference | ${r.load_avg.tcp} |`,
    `| detection after SIGKILL of the server's process group, p50 / p99 / max (${d.runs} runs x ${CANDIDATES} candidates; found by ${paths(d.paths?.sigkill)}) | ${d.sigkill_p50_ms} / ${d.sigkill_p99_ms} / ${d.sigkill_max_ms} ms | p99 <= 100 ms | ${d.load_before} -> ${d.load_after} |`,
    `| detection after SIGTERM, p50 / p99 / max (found by ${paths(d.paths?.sigterm)}) | ${d.sigterm_p50_ms} / ${d.sigterm_p99_ms} / ${d.sigterm_max_ms} ms | p99 <= 100 ms | ${d.load_before} -> ${d.load_after} |`,
    `| detection after an uncaught error in the server, p50 / p99 / max (found by ${paths(d.paths?.uncaught)}) | ${d.uncaught_p50_ms} / ${d.uncaught_p99_ms} / ${d.uncaught_max_ms} ms | — | ${d.load_before} -> ${d.load_after} |`,
    `| detection after SIGSTOP, p50 / p99 / max (found by ${paths(d.paths?.sigstop)}) | ${d.sigstop_p50_ms} / ${d.sigstop_p99_ms} / ${d.sigstop_max_ms} ms | p99 <= 500 ms | ${d.load_before} -> ${d.load_after} |`,
    `| detection after the server's network is cut | ${d.cut_p99_ms ?? 'not measured here'} | p99 <= 500 ms | — |`,
    `| detection during bulk replication to ${CANDIDATES} candidates, SIGKILL p50 / p99 (${b.runs} runs) | ${b.sigkill_p50_ms} / ${b.sigkill_p99_ms} ms | p99 < 1000 ms | ${b.load_avg} |`,
    `| detection during bulk replication, SIGSTOP p50 / p99 | ${b.sigstop_p50_ms} / ${b.sigstop_p99_ms} ms | p99 < 1000 ms | ${b.load_avg} |`,
    `| false suspicions in ${FALSE_SUSPICION_MS / 1000} s, both cores saturated | ${f.count} | 0 | ${f.load_avg}${f.load_after !== undefined ? ` -> ${f.load_after}` : ''} |`,
    ...(result['false_on_resets']
      ? [
          `| false suspicions while a healthy server's lanes are reset from outside (ss -K every ${RESET_EVERY_MS} ms for ${result['false_on_resets'].window_s} s: ${result['false_on_resets'].connections_reset} connections; redial verdicts ${JSON.stringify(result['false_on_resets'].lane_verdicts)}) | ${result['false_on_resets'].false_on_resets} | 0 | ${result['false_on_resets'].load_before} -> ${result['false_on_resets'].load_after} |`,
        ]
      : []),
    `| false suspicions during the replication runs (to 1 and to 4; longest main-thread event-loop stall of any node ${r.loop_delay_max_ms_1} / ${r.loop_delay_max_ms_4} ms) | ${result['false_suspicions_during_replication']} | 0 | ${r.load_avg.one} / ${r.load_avg.four} |`,
    `| false suspicions during the bulk-detection runs, before the fault | ${b.false_suspicions_before_fault} | 0 | ${b.load_avg} |`,
    ...result['control'].map(
      (c: any) =>
        `| control plane per node, ${c.nodes} nodes (idle) | ${c.frame_bytes_sent_per_s} B/s of frames, ${c.control_wire_bytes_written_per_s} B/s on the control plane's wire (${c.wire_bytes_written_per_s} B/s both planes) | — | ${c.load_avg} |`,
    ),
    '',
    `MB/s here means MiB/s. Replication time runs from the candidate learning of the snapshot to holding all of it; candidates are connected to the server (on their lanes) before it publishes and learn of the snapshot when it is whole, as members of a running federation do; the plain-hypercore reader likewise connects before its writer appends and starts when it learns the core is whole. Writer and reader of every trial are processes of their own. Sustain's node processes start with the settings of src/util/process-settings.ts (V8 heap flags, glibc malloc settings, RocksDB's crc32c in hardware; as \`sustain demo\` and the README's unit do); the plain-hypercore baseline runs with the defaults, and once more with the same settings. Replication figures are medians of ${REPLICATION_ROUNDS} interleaved rounds (TCP, plain hypercore, the same tuned, overlay to 1 and to 4 taking turns to go first; per round: TCP ${r.rounds.tcp.join(', ')}; plain hypercore ${r.rounds.naive.join(', ')}; tuned ${r.rounds.naive_tuned.join(', ')}; to 1 ${r.rounds.one.join(', ')}; to 4 ${r.rounds.four.join(', ')}; data plane only, to 1 ${r.rounds.data_plane_one.join(', ')}, to 4 ${r.rounds.data_plane_four.join(', ')} MB/s); load averages are ranges over the trials.`,
    'The overlay figures travel on the data lane (a direct TCP connection, Noise-encrypted like hyperswarm, overlay/lane.ts) where the peer is reachable; the data-plane row is the fallback over hyperswarm UDX.',
    'Control traffic (admission, pings, control messages) runs on its own hyperswarm, apart from replication.',
    "Where the replication CPU goes (perf profiles) and what bounds these figures: ARCHITECTURE.md, overlay/ and 'Not yet'.",
    '',
    '',
  ]
  const path = join(RESULTS_DIR, '..', 'RESULTS.md')
  // Re-read right before writing: another engineer owns other sections of this file.
  let text = await readFile(path, 'utf8').catch(() => '# Benchmark results\n')
  const section = rows.join('\n')
  const start = text.indexOf('## Overlay')
  if (start >= 0) {
    const next = text.indexOf('\n## ', start + 1)
    text = text.slice(0, start) + section + (next >= 0 ? text.slice(next + 1) : '')
  } else {
    text = `${text.trimEnd()}\n\n${section}`
  }
  await writeFileAtomic(path, text)
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
    one: [] as number[],
    four: [] as number[],
    plane: [] as number[],
  }
  const tcp: number[] = []
  const naive: number[] = []
  const naiveTuned: number[] = []
  const one: ReplicationTrial[] = []
  const four: ReplicationTrial[] = []
  /** To 1 and to 4 with the lane off: the hyperswarm data plane alone. */
  const planeOne: ReplicationTrial[] = []
  const planeFour: ReplicationTrial[] = []
  for (let r = 0; r < REPLICATION_ROUNDS; r++) {
    loads.tcp.push(load1())
    tcp.push(await tcpCopy())
    loads.naive.push(load1())
    naive.push(await naiveHypercore(testnet))
    loads.naiveTuned.push(load1())
    naiveTuned.push(await naiveHypercore(testnet, true))
    // To 1 and to 4 take turns going first, so neither always follows the same trial.
    for (const readers of r % 2 === 0 ? [1, 4] : [4, 1]) {
      ;(readers === 1 ? loads.one : loads.four).push(load1())
      ;(readers === 1 ? one : four).push(await overlayReplication(testnet, readers))
    }
    loads.plane.push(load1())
    planeOne.push(await overlayReplication(testnet, 1, false))
    planeFour.push(await overlayReplication(testnet, 4, false))
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

/** Phases re-run since the full run: earlier re-runs of the same day stay listed. */
function rerunPhases(previous: Record<string, any>, phases: string[]): string[] {
  const today = new Date().toISOString().slice(0, 10)
  const earlier: string[] = previous['rerun']?.date === today ? previous['rerun'].phases : []
  return [...new Set([...earlier, ...phases])]
}

/**
 * `--merge-logged FILE`: the phases a run printed (`[bench:overlay] KEY: {json}` lines of its stderr,
 * kept in FILE) replace theirs in the previous results, as `--only … --merge` would have written them:
 * for a run whose later phase failed after these were measured.
 */
async function mergeLogged(file: string): Promise<void> {
  const logged: Record<string, unknown> = {}
  for (const line of (await readFile(file, 'utf8')).split('\n')) {
    const m = /^\[bench:overlay\] (\w+): (\{.*\})$/.exec(line)
    if (m && m[1] !== 'false_down_reasons') logged[m[1]!] = JSON.parse(m[2]!)
  }
  assert(Object.keys(logged).length > 0, `no phase results in ${file}`)
  const previous = JSON.parse(await readFile(join(RESULTS_DIR, 'overlay.json'), 'utf8'))
  const rerun = {
    date: new Date().toISOString().slice(0, 10),
    phases: rerunPhases(previous, Object.keys(logged)),
    log: file,
  }
  await writeResults({ ...previous, ...logged, date: previous.date, rerun })
  log(`merged ${Object.keys(logged).join(', ')} from ${file}`)
}

async function main(): Promise<void> {
  const logArg = process.argv.indexOf('--merge-logged')
  if (logArg >= 0) {
    await mergeLogged(process.argv[logArg + 1]!)
    return
  }
  const testnet = await startTestnet(5)
  const result: Record<string, any> = {
    quick,
    date: new Date().toISOString().slice(0, 10),
    machine: `${cpus().length} cores, Node ${process.version}`,
  }
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
    if (only === null) await writeResults(result)
    else if (merge) {
      const previous = JSON.parse(await readFile(join(RESULTS_DIR, 'overlay.json'), 'utf8'))
      assert.equal(previous.quick, quick, '--merge needs previous results of the same --quick mode')
      const rerun = { date: result['date'], phases: rerunPhases(previous, [...only]) }
      await writeResults({ ...previous, ...result, date: previous.date, rerun })
    } else log(`--only: nothing written. ${JSON.stringify(result)}`)
  } finally {
    await testnet.destroy()
  }
}

await main()
