/**
 * Front door benchmark (issue 17): what a client sees.
 * - latency per SMTP transaction (a fresh connection each) to the service directly, through the
 *   server's front door and through a candidate's, taking turns (3 node processes, examples/mail); the
 *   added latency is also taken paired (each round's via-path time minus the same round's direct time),
 *   because the service's own time spreads widely (its snapshot pauses) and a difference of separately
 *   sampled medians is noise of that size;
 * - the front door's own cost without the nodes' other work: round trips of 1-byte pings to an echo
 *   service, directly and through each door, all in this process (no process wake-ups in the way);
 * - client outage after SIGKILL of the server, N runs, for a client that knows one front door
 *   (a candidate's): the longest time without an acknowledgement, and refused connections;
 * - throughput of one TCP stream into a discarding service, directly and through a candidate's front
 *   door (two members in this process on a local testnet, so one thread carries both relays);
 * - bytes per idle connection held at a front door (1,000 connections, both ends in this process).
 * Keeps the run in bench/results/frontdoor.json (earlier runs kept) and regenerates bench/RESULTS.md
 * (bench/render/frontdoor.ts). rounds = 1: the throughput is one stream each (the other counts are in
 * the JSON and the table).
 * Usage: bash test/loopback-only.sh npx tsx bench/frontdoor.ts [--quick]
 */

import { once } from 'node:events'
import { mkdtemp, rm } from 'node:fs/promises'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { parseArgs } from 'node:util'
import v8 from 'node:v8'
import vm from 'node:vm'
import { sendMail } from '../examples/mail/smtp-client.ts'
import { startTestnet } from '../overlay/testnet.ts'
import { LocalFederation, type LocalNode } from '../src/demo/local-federation.ts'
import { MailLoop } from '../src/demo/mail-loop.ts'
import { FrontDoorPair } from '../test/frontdoor/pair.ts'
import { withOneDoorFederation } from './frontdoor-scenario.ts'
import { keepRun } from './lib/results-file.ts'
import { benchCommand, type RunMeta, startRun } from './lib/run-meta.ts'
import { measureKeepalived } from './peers/keepalived.ts'
import type { FrontdoorRun } from './render/frontdoor.ts'
import { renderResults } from './render/results-md.ts'

const { values } = parseArgs({ options: { quick: { type: 'boolean', default: false } } })
const QUICK = values.quick === true
const TRANSACTIONS = QUICK ? 100 : 1000
const RUNS = QUICK ? 3 : 20
const STREAM_BYTES = (QUICK ? 128 : 1024) * 1024 * 1024
const IDLE_CONNECTIONS = 1000
const MiB = 1024 * 1024

/** Each round's via-path figure minus the same round's direct one (the rounds take turns). */
function pairedDiffs(via: number[], direct: number[]): number[] {
  return via.map((v, i) => v - direct[i]!)
}

function quantile(samples: number[], p: number): number | null {
  if (samples.length === 0) return null
  const sorted = [...samples].sort((a, b) => a - b)
  const v = sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!
  return Math.round(v * 100) / 100
}

async function transaction(host: string, port: number, n: number): Promise<number> {
  const started = performance.now()
  await sendMail({
    host,
    port,
    from: 'bench@example.org',
    to: ['bench@example.org'],
    subject: `b-${n}`,
    text: 'x\n',
  })
  return performance.now() - started
}

async function latency(server: LocalNode, entry: LocalNode) {
  const paths = {
    direct: { host: '127.0.0.1', port: server.port },
    via_server: server.front_door!,
    via_candidate: entry.front_door!,
  }
  const samples: Record<keyof typeof paths, number[]> = { direct: [], via_server: [], via_candidate: [] }
  for (let i = 0; i < TRANSACTIONS; i++) {
    for (const name of Object.keys(paths) as (keyof typeof paths)[]) {
      samples[name].push(await transaction(paths[name].host, paths[name].port, i))
    }
  }
  return samples
}

/** Waits until `client` has `n` acknowledgements later than `after_ms` (bounded). */
async function waitAcks(client: MailLoop, n: number, after_ms: number): Promise<void> {
  const deadline = Date.now() + 60_000
  while ([...client.record.acked.values()].filter((t) => t > after_ms).length < n) {
    if (Date.now() > deadline) throw new Error('the client got no acknowledgements')
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

/**
 * The outage a client saw across a kill: the longest gap between its acknowledgements from its last one
 * before the kill to the first of a transaction it began after the kill (only the new server can have
 * served that one). Not simply "first acknowledgement after the kill": a transaction the old server
 * answered just before it died is acknowledged after the kill, and the failover's gap comes after it
 * (one run of 20 counted 197 ms that way).
 */
async function outageSeen(client: MailLoop, killed_ms: number, before: number) {
  const deadline = Date.now() + 60_000
  const served = () => client.attempts.find((a) => a.outcome === 'acked' && a.start_ms > killed_ms)
  while (served() === undefined) {
    if (Date.now() > deadline) throw new Error('no transaction begun after the kill was acknowledged')
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  const first_after = served()!.end_ms
  const acks = [...client.record.acked.values()]
    .filter((t) => t >= before && t <= first_after)
    .sort((a, b) => a - b)
  let gap_ms = 0
  for (let i = 1; i < acks.length; i++) gap_ms = Math.max(gap_ms, acks[i]! - acks[i - 1]!)
  return { gap_ms, first_after }
}

/** Where an outage went: ms after the kill at which each stage was first logged (null: not seen). */
interface OutageStages {
  /** The client's last acknowledgement before the kill (negative: before it). */
  last_ack: number
  /** A survivor saw the server gone (server_suspected). */
  detected: number | null
  elected: number | null
  /** The new server restored and started its service. */
  restored: number | null
  /** The client's front door learnt the new server (its route changed to it). */
  door_knows_server: number | null
  /** The client's held connection went to the new server. */
  forwarded: number | null
  /** The new server's first probe passed (the core's health ok; clients no longer wait for it). */
  answering: number | null
  /** The first acknowledgement of a transaction begun after the kill. */
  first_ack: number
}
const STAGE_NAMES = [
  'detected',
  'elected',
  'restored',
  'door_knows_server',
  'forwarded',
  'answering',
] as const

function firstAfter(node: LocalNode, after_ms: number, test: (r: LocalNode['records'][number]) => boolean) {
  const found = node.records.find((r) => Number(r.time) >= after_ms && test(r))
  return found === undefined ? null : Number(found.time) - after_ms
}

/**
 * One SIGKILL run on a fresh federation (a killed node that restarts into a running federation is
 * another scenario): a client that knows one candidate's front door keeps sending; the gap between
 * its last acknowledgement before the kill and its first after is the outage. The stages come from
 * the nodes' logs (wall-clock `time`: one machine, one clock).
 */
async function outageRun(run: number) {
  return withOneDoorFederation(`sustain-bench-frontdoor-${run}-`, async ({ fed, server, entry, door }) => {
    const client = new MailLoop(door.host, door.port, 'outage')
    try {
      await waitAcks(client, 5, 0)
      const snapshots = () => server.records.filter((r) => r.event === 'snapshot_taken').length
      const base = snapshots()
      await server.waitFor(() => snapshots() >= base + 2, 30_000, 'two snapshots while mail flows')
      const killed_ms = Date.now()
      const before = Math.max(...[...client.record.acked.values()].filter((t) => t <= killed_ms))
      server.signal('SIGKILL')
      const { gap_ms, first_after } = await outageSeen(client, killed_ms, before)
      const survivors = fed.nodes.filter((n) => n !== server)
      const at = (test: (r: LocalNode['records'][number]) => boolean) => {
        const seen = survivors.map((n) => firstAfter(n, killed_ms, test)).filter((t) => t !== null)
        return seen.length > 0 ? Math.min(...seen) : null
      }
      const new_server = survivors.find(
        (n) => firstAfter(n, killed_ms, (r) => r.event === 'restored') !== null,
      )
      // The answering probe may come after the first acknowledgement now: wait for it, bounded.
      if (new_server) {
        await new_server
          .waitFor(
            () => firstAfter(new_server, killed_ms, (r) => r.event === 'service_answering') !== null,
            10_000,
            'the new server answering its probe',
          )
          .catch(() => {})
      }
      const stages: OutageStages = {
        last_ack: before - killed_ms,
        detected: at((r) => r.event === 'server_suspected'),
        elected: at((r) => r.event === 'elected'),
        restored: at((r) => r.event === 'restored'),
        door_knows_server: firstAfter(
          entry,
          killed_ms,
          (r) => r.event === 'front_door_route' && String(r['route']).startsWith('remote:'),
        ),
        forwarded: firstAfter(entry, killed_ms, (r) => r.event === 'front_door_held_forwarded'),
        answering: at((r) => r.event === 'service_answering'),
        first_ack: first_after - killed_ms,
      }
      return { gap_ms, stages, ...(await client.stop()) }
    } finally {
      await client.stop()
    }
  })
}

async function outage() {
  const gaps: number[] = []
  const stages: OutageStages[] = []
  let refused = 0
  let failed = 0
  for (let run = 0; run < RUNS; run++) {
    const result = await outageRun(run)
    gaps.push(result.gap_ms)
    stages.push(result.stages)
    refused += result.refused
    failed += result.failed
    process.stderr.write(
      `outage run ${run + 1}/${RUNS}: ${result.gap_ms} ms, refused ${result.refused}, stages ${JSON.stringify(result.stages)}\n`,
    )
  }
  return { gaps, refused, failed, stages }
}

/** Median of each stage over the runs that logged it. */
function stageMedians(stages: OutageStages[]): Record<string, number | null> {
  const keys = ['last_ack', ...STAGE_NAMES, 'first_ack'] as const
  return Object.fromEntries(
    keys.map((k) => [
      k,
      quantile(
        stages.map((s) => s[k]).filter((v): v is number => v !== null),
        50,
      ),
    ]),
  )
}

/**
 * The in-process service: discards what it reads (the throughput stream), except a connection whose
 * first byte is ECHO_MARK, which gets every byte back (the ping round trips).
 */
const ECHO_MARK = 0x45 // 'E'
async function discardService(): Promise<net.Server> {
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    socket.setNoDelay(true)
    socket.on('error', () => {})
    socket.on('end', () => socket.end())
    socket.once('data', (first: Buffer) => {
      if (first[0] === ECHO_MARK) {
        socket.write(first)
        socket.pipe(socket, { end: false })
      } else socket.resume()
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return server
}

async function stream(port: number): Promise<number> {
  const socket = net.connect({ host: '127.0.0.1', port })
  await once(socket, 'connect')
  const chunk = Buffer.alloc(256 * 1024, 1)
  const started = performance.now()
  for (let sent = 0; sent < STREAM_BYTES; sent += chunk.byteLength) {
    if (!socket.write(chunk)) await once(socket, 'drain')
  }
  socket.end()
  await once(socket, 'close') // the service ends after reading everything
  return STREAM_BYTES / MiB / ((performance.now() - started) / 1000)
}

const ECHO_SESSIONS = QUICK ? 50 : 200
const PINGS_PER_SESSION = 10

/** A fresh connection to the echo service: ms to its first echo, then each ping's round trip. */
async function echoSession(port: number): Promise<{ first_ms: number; rtt_ms: number[] }> {
  const started = performance.now()
  const socket = net.connect({ host: '127.0.0.1', port })
  socket.setNoDelay(true)
  socket.on('error', () => {})
  socket.write(Buffer.from([ECHO_MARK]))
  await once(socket, 'data')
  const first_ms = performance.now() - started
  const rtt_ms: number[] = []
  for (let i = 0; i < PINGS_PER_SESSION; i++) {
    const t = performance.now()
    socket.write(Buffer.from([ECHO_MARK]))
    await once(socket, 'data')
    rtt_ms.push(performance.now() - t)
  }
  socket.end()
  await once(socket, 'close')
  return { first_ms, rtt_ms }
}

/**
 * What the front door's code adds, paired per round against direct: a fresh connection to its first
 * echo, and one round trip on an open connection. Client, both doors and the service share this
 * process's thread, so no process wake-up or scheduler wait is in these figures (in the node processes
 * they are: see latency_ms).
 */
async function echoAdded(ports: { direct: number; via_server: number; via_candidate: number }) {
  type Path = keyof typeof ports
  const names = Object.keys(ports) as Path[]
  const first: Record<Path, number[]> = { direct: [], via_server: [], via_candidate: [] }
  const rtt: Record<Path, number[]> = { direct: [], via_server: [], via_candidate: [] }
  for (let i = 0; i < 3; i++) for (const p of names) await echoSession(ports[p]) // warm-up
  for (let i = 0; i < ECHO_SESSIONS; i++) {
    for (const p of names) {
      const s = await echoSession(ports[p])
      first[p].push(s.first_ms)
      rtt[p].push(...s.rtt_ms)
    }
  }
  const added = (xs: Record<Path, number[]>, p: Path) => quantile(pairedDiffs(xs[p], xs.direct), 50)
  return {
    sessions: ECHO_SESSIONS,
    pings: ECHO_SESSIONS * PINGS_PER_SESSION,
    direct_first_p50: quantile(first.direct, 50),
    direct_rtt_p50: quantile(rtt.direct, 50),
    via_server_first_added_p50: added(first, 'via_server'),
    via_server_rtt_added_p50: added(rtt, 'via_server'),
    via_candidate_first_added_p50: added(first, 'via_candidate'),
    via_candidate_rtt_added_p50: added(rtt, 'via_candidate'),
  }
}

// A full collection before each reading, so the difference is what the connections keep alive.
v8.setFlagsFromString('--expose-gc')
const gc = vm.runInNewContext('gc') as () => void

function usedBytes(): number {
  for (let i = 0; i < 3; i++) gc()
  const m = process.memoryUsage()
  return m.heapUsed + m.external + m.arrayBuffers
}

async function inProcess() {
  const testnet = await startTestnet(5)
  const sink = await discardService()
  const sink_port = (sink.address() as net.AddressInfo).port
  const pair = await FrontDoorPair.start(testnet, sink_port, {
    max_held: 2 * IDLE_CONNECTIONS,
    hold_ms: 600_000,
  })
  try {
    const echo = await echoAdded({
      direct: sink_port,
      via_server: pair.server.port.listen_port,
      via_candidate: pair.origin.port.listen_port,
    })
    const direct = await stream(sink_port)
    const via_candidate = await stream(pair.origin.port.listen_port)
    // Idle connections held (no server known): what one waiting client costs the front door.
    pair.origin.route = null
    const before = usedBytes()
    const sockets: net.Socket[] = []
    for (let i = 0; i < IDLE_CONNECTIONS; i++) {
      const s = net.connect({ host: '127.0.0.1', port: pair.origin.port.listen_port })
      s.on('error', () => {})
      sockets.push(s)
      await once(s, 'connect')
    }
    while (pair.origin.door.snapshot().held_now < IDLE_CONNECTIONS)
      await new Promise((r) => setTimeout(r, 20))
    const per_connection = Math.round((usedBytes() - before) / IDLE_CONNECTIONS)
    for (const s of sockets) s.destroy()
    return { direct, via_candidate, bytes_per_idle_connection: per_connection, echo }
  } finally {
    await pair.stop()
    sink.close()
    await testnet.destroy()
  }
}

const dir = await mkdtemp(join(tmpdir(), 'sustain-bench-frontdoor-'))
const finish = startRun(benchCommand('bench:frontdoor'), 1)
// Priorities: the client's entry node (node-2) is the lowest, so it never serves while another lives.
const fed = new LocalFederation({
  dir,
  nodes: 3,
  priorities: [30, 20, 10],
  snapshot_interval_ms: 500,
  front_door: {},
})
const release = fed.stopOnSignals()
let json: FrontdoorRun & RunMeta
try {
  await fed.start()
  const server = await fed.server(60_000)
  const entry = fed.nodes.filter((n) => n !== server).at(-1)!
  const lat = await latency(server, entry)
  await fed.stop()
  const out = await outage()
  const local = await inProcess()
  let keepalived: FrontdoorRun['keepalived_ms'] = {
    default_p50: null,
    fastest_p50: null,
  }
  // Each interval on its own: one that cannot reach a steady state (10 ms adverts on a loaded machine
  // flap) must not cost the other its figure; the reason is kept beside the missing one.
  for (const [key, advert_int_s] of [
    ['default', 1],
    ['fastest', 0.01], // VRRPv3's smallest interval
  ] as const) {
    try {
      const measured = await measureKeepalived(QUICK ? 3 : 10, advert_int_s)
      keepalived = {
        ...keepalived,
        [`${key}_p50`]: measured.takeover_p50_ms,
        version: measured.version,
        ...(key === 'default' ? { runs: measured.runs } : {}),
      }
    } catch (error) {
      const reason = (error as Error).message
      keepalived = { ...keepalived, [`${key}_error`]: reason }
      process.stderr.write(`keepalived (advert_int ${advert_int_s} s) not measured: ${reason}\n`)
    }
  }
  json = {
    quick: QUICK,
    latency_ms: {
      transactions: TRANSACTIONS,
      direct_p50: quantile(lat.direct, 50),
      direct_p99: quantile(lat.direct, 99),
      via_server_p50: quantile(lat.via_server, 50),
      via_server_p99: quantile(lat.via_server, 99),
      via_candidate_p50: quantile(lat.via_candidate, 50),
      via_candidate_p99: quantile(lat.via_candidate, 99),
      added_method: 'paired: median of per-round differences (via minus direct, same round)',
      via_server_added_p50: quantile(pairedDiffs(lat.via_server, lat.direct), 50),
      via_candidate_added_p50: quantile(pairedDiffs(lat.via_candidate, lat.direct), 50),
    },
    echo_added_ms: local.echo,
    throughput_mb_per_s: {
      bytes: STREAM_BYTES,
      direct: Math.round(local.direct),
      via_candidate: Math.round(local.via_candidate),
    },
    outage: {
      runs: out.gaps.length,
      p50_ms: quantile(out.gaps, 50),
      max_ms: out.gaps.length > 0 ? Math.max(...out.gaps) : null,
      refused: out.refused,
      failed_transactions: out.failed,
      samples_ms: out.gaps,
      stages_p50_ms: stageMedians(out.stages),
    },
    keepalived_ms: keepalived,
    bytes_per_idle_connection: local.bytes_per_idle_connection,
    ...finish(),
  }
} finally {
  release()
  await fed.stop()
  await rm(dir, { recursive: true, force: true })
}
await keepRun('frontdoor.json', json)
await renderResults()
process.stdout.write(`${JSON.stringify(json)}\n`)
