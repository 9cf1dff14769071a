/**
 * Failover benchmark: a 5-node federation of real node processes serving examples/mail on loopback.
 * Runs server SIGKILL, server SIGSTOP (+ SIGCONT after the takeover) and service crash, N times each,
 * and measures detection, election, restore and the first SMTP banner from the new server; then
 * `leave_under_load`: N planned leaves in a row under mail load (bench/leave-under-load.ts). Writes
 * bench/results/failover.json and a section of bench/RESULTS.md.
 * Usage: bash test/loopback-only.sh npx tsx bench/failover.ts [--quick] [--runs N] [--leaves N]
 *        [--only leave]  (the leaves alone: bench/results/failover-leave.json, "Leave under load")
 */

import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { childrenOf, LocalFederation, type LocalNode, type LogRecord } from '../src/demo/local-federation.ts'
import { leaveUnderLoad } from './leave-under-load.ts'
import { markdownTable, replaceSection } from './lib/results-md.ts'
import { measureKeepalived } from './peers/keepalived.ts'

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    runs: { type: 'string' },
    leaves: { type: 'string' },
    /** `leave`: only the leaves under load (bench/results/failover-leave.json and its RESULTS.md section). */
    only: { type: 'string' },
  },
})
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

function pct(values: number[], p: number): number | null {
  if (values.length === 0) return null
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!
}

interface Sample {
  detect_ms: number | null
  elect_ms: number | null
  restore_ms: number | null
  answer_ms: number
}

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

function summarise(samples: Sample[]) {
  const field = (k: keyof Sample) => samples.map((s) => s[k]).filter((v): v is number => v !== null)
  return {
    runs: samples.length,
    detect_p50_ms: pct(field('detect_ms'), 50),
    detect_p99_ms: pct(field('detect_ms'), 99),
    elect_p50_ms: pct(field('elect_ms'), 50),
    restore_p50_ms: pct(field('restore_ms'), 50),
    answer_p50_ms: pct(field('answer_ms'), 50),
    answer_p95_ms: pct(field('answer_ms'), 95),
    answer_p99_ms: pct(field('answer_ms'), 99),
  }
}

function leaveSentence(l: Awaited<ReturnType<typeof leaveUnderLoad>>): string {
  return (
    `Leave under load (${l.runs} leaves of the server in a row, each leaver rejoining, a client mailing every 50 ms to ` +
    `any node's address): outage p50 ${l.outage_p50_ms} ms, max ${l.outage_max_ms} ms; ${l.acknowledged} of ` +
    `${l.sent_during_leave} mails acknowledged, ${l.lost_acknowledged} lost; two servers ${l.two_servers}; ` +
    `leave exited non-zero ${l.leave_exit_nonzero}.`
  )
}

/** `--only leave`: the leaves under load alone, with the machine's load around them. */
async function benchLeaves(federation: LocalFederation): Promise<void> {
  const load_before = (await readFile('/proc/loadavg', 'utf8')).split(' ').slice(0, 3).join(' ')
  const leave_under_load = await leaveUnderLoad(federation, LEAVES)
  const load_after = (await readFile('/proc/loadavg', 'utf8')).split(' ').slice(0, 3).join(' ')
  const json = {
    machine: { cpus: 2, node: process.version, load_before, load_after },
    nodes: NODES,
    leave_under_load,
  }
  await mkdir(new URL('./results', import.meta.url), { recursive: true })
  await writeFile(
    new URL('./results/failover-leave.json', import.meta.url),
    `${JSON.stringify(json, null, 2)}\n`,
  )
  await replaceSection(
    new URL('./RESULTS.md', import.meta.url).pathname,
    '## Leave under load',
    `\`npm run bench:failover -- --only leave --leaves ${LEAVES}\`, ${NODES} node processes on 2 cores shared with ` +
      `other work (load average ${load_before} before, ${load_after} after), ${new Date().toISOString().slice(0, 10)}. ` +
      `${leaveSentence(leave_under_load)} Outage = the client's longest time without an acknowledgement from the ` +
      `leave request to the end of the hand-over. Per leave (ms): ${leave_under_load.leaves.map((l) => l.gap_ms).join(', ')}.\n`,
  )
  process.stdout.write(`${JSON.stringify({ ...leave_under_load, leaves: undefined })}\n`)
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
  const results: Record<string, Sample[]> = { sigkill: [], sigstop: [], service_crash: [] }
  for (let i = 0; i < RUNS; i++) {
    results.sigkill!.push(await nodeFault(fed, 'SIGKILL'))
    results.sigstop!.push(await nodeFault(fed, 'SIGSTOP'))
    results.service_crash!.push(await serviceCrash(fed))
    process.stderr.write(
      `run ${i + 1}/${RUNS}: ${JSON.stringify([results.sigkill!.at(-1), results.sigstop!.at(-1), results.service_crash!.at(-1)])}\n`,
    )
  }
  const leave_under_load = await leaveUnderLoad(fed, LEAVES)
  // The peer, same machine, same run: keepalived (VRRP) with its default timing, master SIGKILLed.
  const keepalived = await measureKeepalived(RUNS)
  const pauses = fed.nodes.flatMap((n) =>
    n.records.filter((r) => r.event === 'snapshot_taken').map((r) => Number(r.pause_ms)),
  )
  const json = {
    machine: { cpus: 2, node: process.version },
    nodes: NODES,
    quick: values.quick,
    sigkill: summarise(results.sigkill!),
    sigstop: summarise(results.sigstop!),
    service_crash: summarise(results.service_crash!),
    leave_under_load,
    snapshot_pause_p50_ms: pct(pauses, 50),
    snapshot_pause_p99_ms: pct(pauses, 99),
    snapshots: pauses.length,
    peers: { keepalived },
    samples: results,
  }
  await mkdir(new URL('./results', import.meta.url), { recursive: true })
  await writeFile(new URL('./results/failover.json', import.meta.url), `${JSON.stringify(json, null, 2)}\n`)
  const row = (name: string, s: ReturnType<typeof summarise>) => [
    name,
    s.runs,
    s.detect_p50_ms ?? '-',
    s.detect_p99_ms ?? '-',
    s.elect_p50_ms ?? '-',
    s.restore_p50_ms ?? '-',
    s.answer_p50_ms,
    s.answer_p95_ms,
    s.answer_p99_ms,
  ]
  const table = markdownTable(
    [
      'fault',
      'runs',
      'detect p50 ms',
      'detect p99 ms',
      'elected p50 ms',
      'restored p50 ms',
      'answer p50 ms',
      'answer p95 ms',
      'answer p99 ms',
    ],
    [
      row('server SIGKILL', json.sigkill),
      row('server SIGSTOP', json.sigstop),
      row('service crash', json.service_crash),
      [
        `keepalived ${keepalived.version} master SIGKILL (VIP moved)`,
        keepalived.runs,
        '-',
        '-',
        '-',
        '-',
        keepalived.takeover_p50_ms,
        keepalived.takeover_p95_ms,
        keepalived.takeover_p99_ms,
      ],
    ],
  )
  await replaceSection(
    new URL('./RESULTS.md', import.meta.url).pathname,
    '## Failover',
    `\`npm run bench:failover${values.quick ? ' -- --quick' : ''}\`, ${NODES} node processes + services on 2 cores, ` +
      `${new Date().toISOString().slice(0, 10)}. Times from the signal to each stage (answer = first SMTP 220 banner ` +
      `from the new server, probed every 25 ms).\n\n${table}\n\n` +
      `${leaveSentence(leave_under_load)} Snapshot pause ` +
      `(mail state dir, ${pauses.length} snapshots): p50 ${json.snapshot_pause_p50_ms} ms, p99 ${json.snapshot_pause_p99_ms} ms.\n\n` +
      'keepalived runs in two network namespaces joined by a veth pair, default timing (advert_int 1); its ' +
      'figure is the VIP takeover alone (no service restore). The HA management systems of the original papers ' +
      'restored function in 4 to 9 s (published, not measured here).\n',
  )
  process.stdout.write(
    `${JSON.stringify({ sigkill: json.sigkill, sigstop: json.sigstop, service_crash: json.service_crash, leave_under_load: { ...leave_under_load, leaves: undefined }, snapshot_pause_p99_ms: json.snapshot_pause_p99_ms })}\n`,
  )
}
