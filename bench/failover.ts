/**
 * Failover benchmark: a 5-node federation of real node processes serving examples/mail on loopback.
 * Runs server SIGKILL, server SIGSTOP (+ SIGCONT after the takeover) and service crash, N times each,
 * and measures detection, election, restore and the first SMTP banner from the new server; then
 * `leave_under_load`: N planned leaves in a row under mail load (bench/leave-under-load.ts). Keeps the
 * run in bench/results/failover.json (earlier runs kept) and regenerates bench/RESULTS.md
 * (bench/render/failover.ts).
 * Usage: bash test/loopback-only.sh npx tsx bench/failover.ts [--quick] [--runs N] [--leaves N]
 *        [--only leave]  (the leaves alone: bench/results/failover-leave.json, "Leave under load")
 */

import { mkdtemp, rm } from 'node:fs/promises'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { childrenOf, LocalFederation, type LocalNode, type LogRecord } from '../src/demo/local-federation.ts'
import { leaveUnderLoad } from './leave-under-load.ts'
import { keepRun } from './lib/results-file.ts'
import { benchCommand, type RunMeta, startRun } from './lib/run-meta.ts'
import { spread } from './lib/stats.ts'
import { measureKeepalived } from './peers/keepalived.ts'
import { type FailoverRun, type FaultSample, type LeaveRun, leaveSentence } from './render/failover.ts'
import { renderResults } from './render/results-md.ts'

/** Sustain pings every 200 ms; keepalived with the same interval has the same detection budget. */
const KEEPALIVED_SAME_BUDGET_S = 0.2
/** VRRPv3's smallest interval (one centisecond). */
const KEEPALIVED_FASTEST_S = 0.01
const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    runs: { type: 'string' },
    leaves: { type: 'string' },
    /** `leave`: only the leaves under load (bench/results/failover-leave.json and its RESULTS.md section). */
    only: { type: 'string' },
  },
})
if (values.only !== undefined && values.only !== 'leave')
  throw new Error(`--only: the only part that runs alone is 'leave', got '${values.only}'`)
const RUNS = Number(values.runs ?? (values.quick ? 5 : 20))
const LEAVES = Number(values.leaves ?? 10)
const NODES = 5

/** Resolves at the first 220 banner from any of `ports` (polled every 25 ms, bounded). */
async function firstBanner(ports: number[], timeout_ms: number): Promise<{ at: number; port: number }> {
  const deadline = Date.now() + timeout_ms
  while (Date.now() < deadline) {
    const hits = await Promise.all(ports.map((port) => banner(port)))
    const i = hits.findIndex(Boolean)
    if (i >= 0) return { at: Date.now(), port: ports[i]! }
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
  throw new Error(`no SMTP banner within ${timeout_ms} ms`)
}

function banner(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1')
    const done = (ok: boolean) => {
      socket.destroy()
      resolve(ok)
    }
    socket.setTimeout(300, () => done(false))
    socket.once('error', () => done(false))
    socket.once('data', (data) => done(data.toString().startsWith('220')))
  })
}

const after = (name: string, t: number) => (r: LogRecord) => r.event === name && Number(r.time) >= t

async function firstAmong(nodes: LocalNode[], name: string, t: number, timeout_ms: number): Promise<number> {
  const { record } = await LocalFederation.first(nodes, after(name, t), timeout_ms, name)
  return Number(record.time) - t
}

type Sample = FaultSample

/** Restarts killed nodes and waits until every node follows one healthy server. */
async function settle(fed: LocalFederation): Promise<LocalNode> {
  for (const node of fed.nodes) if (!node.running) node.start()
  const server = await fed.server(60_000)
  const key = (await server.status())?.node.key
  for (const node of fed.nodes) {
    for (let i = 0; i < 200 && (await node.status(1000))?.node.server !== key; i++) {
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
  }
  return server
}

async function nodeFault(fed: LocalFederation, kind: 'SIGKILL' | 'SIGSTOP'): Promise<Sample> {
  const server = await settle(fed)
  const others = fed.nodes.filter((n) => n !== server)
  const t = Date.now()
  server.signal(kind)
  const detect_ms = await firstAmong(others, 'server_suspected', t, 30_000)
  const elect_ms = await firstAmong(others, 'elected', t, 30_000)
  const restore_ms = await firstAmong(others, 'restored', t, 60_000)
  const answered = await firstBanner(
    others.map((n) => n.port),
    60_000,
  )
  if (kind === 'SIGSTOP') {
    server.signal('SIGCONT')
    // Let the heal resolve (one server again) before the next run.
    await fed.server(60_000)
    await new Promise((resolve) => setTimeout(resolve, 3000))
  }
  return { detect_ms, elect_ms, restore_ms, answer_ms: answered.at - t }
}

async function serviceCrash(fed: LocalFederation): Promise<Sample> {
  const server = await settle(fed)
  const [child] = childrenOf(server.pid!)
  if (!child) throw new Error(`no service process under ${server.pid}`)
  const t = Date.now()
  process.kill(child, 'SIGKILL')
  await new Promise((resolve) => setTimeout(resolve, 5)) // let the port close before probing
  const answered = await firstBanner([server.port], 30_000)
  return { detect_ms: null, elect_ms: null, restore_ms: null, answer_ms: answered.at - t }
}

/** `--only leave`: the leaves under load alone, with the machine's load around them. */
async function benchLeaves(federation: LocalFederation): Promise<void> {
  const finish = startRun(benchCommand('bench:failover'), LEAVES)
  const leave_under_load = await leaveUnderLoad(federation, LEAVES)
  const run: LeaveRun & RunMeta = { nodes: NODES, leave_under_load, ...finish() }
  await keepRun('failover-leave.json', run)
  await renderResults()
  process.stdout.write(`${leaveSentence(leave_under_load)}\n`)
}

const dir = await mkdtemp(join(tmpdir(), 'sustain-bench-failover-'))
const fed = new LocalFederation({ dir, nodes: NODES, base_port: 2700, snapshot_interval_ms: 1000 })
const release = fed.stopOnSignals()
try {
  await fed.start()
  if (values.only === 'leave') await benchLeaves(fed)
  else await benchAll(fed)
} finally {
  release()
  await fed.stop()
  await rm(dir, { recursive: true, force: true })
}

async function benchAll(fed: LocalFederation): Promise<void> {
  const finish = startRun(benchCommand('bench:failover'), RUNS)
  const samples: FailoverRun['samples'] = { sigkill: [], sigstop: [], service_crash: [] }
  for (let i = 0; i < RUNS; i++) {
    samples.sigkill.push(await nodeFault(fed, 'SIGKILL'))
    samples.sigstop.push(await nodeFault(fed, 'SIGSTOP'))
    samples.service_crash.push(await serviceCrash(fed))
    process.stderr.write(
      `run ${i + 1}/${RUNS}: ${JSON.stringify([samples.sigkill.at(-1), samples.sigstop.at(-1), samples.service_crash.at(-1)])}\n`,
    )
  }
  const leave_under_load = await leaveUnderLoad(fed, LEAVES)
  // The peer, same machine, same run: keepalived (VRRP), master SIGKILLed, at its default advert
  // interval, at Sustain's heartbeat interval (the same detection budget) and at its fastest.
  const keepalived = await measureKeepalived(RUNS, 1)
  const keepalived_same_budget = await measureKeepalived(RUNS, KEEPALIVED_SAME_BUDGET_S)
  const keepalived_fastest = await measureKeepalived(RUNS, KEEPALIVED_FASTEST_S)
  const pauses = fed.nodes.flatMap((n) =>
    n.records.filter((r) => r.event === 'snapshot_taken').map((r) => Number(r.pause_ms)),
  )
  const run: FailoverRun & RunMeta = {
    nodes: NODES,
    quick: values.quick ?? false,
    samples,
    leave_under_load,
    snapshot_pause_ms: pauses.length > 0 ? spread(pauses, 2) : undefined,
    peers: { keepalived, keepalived_same_budget, keepalived_fastest },
    ...finish(),
  }
  await keepRun('failover.json', run)
  await renderResults()
  process.stdout.write(`${leaveSentence(leave_under_load)}\n`)
}
