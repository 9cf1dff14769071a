/**
 * Idle cost on loopback, without the fault lab's namespaces: per federation size, N real `sustain join`
 * nodes with the mail service on a local testnet, left idle for a window once formed (a healthy server,
 * every node reaching every other), then stopped. Per node: CPU time as % of one core over the window
 * (utime + stime of the node's threads, its descendants, and every child reaped meanwhile, i.e. probes;
 * /proc ticks: time consumed, which the machine's load inflates far less than latency), split by part,
 * and the server's apart from the candidates'; bytes per second per node through lo (the run's own
 * namespace). Prints one JSON line per size with the load.
 * Usage: npm run bench:idle [-- --nodes 1,5 --window-s 60 --rounds 1 --snapshot-interval-ms 5000]
 */
import { readFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { LocalFederation } from '../src/demo/local-federation.ts'
import { ticks, type Usage, usage } from './lib/proc-cpu.ts'

const { values } = parseArgs({
  options: {
    nodes: { type: 'string', default: '1,5' },
    'window-s': { type: 'string', default: '60' },
    'settle-s': { type: 'string', default: '10' },
    rounds: { type: 'string', default: '1' },
    'snapshot-interval-ms': { type: 'string', default: '5000' },
  },
})
const sizes = values.nodes.split(',').map(Number)
const window_ms = Number(values['window-s']) * 1000
const settle_ms = Number(values['settle-s']) * 1000
const rounds = Number(values.rounds)
const snapshot_interval_ms = Number(values['snapshot-interval-ms'])
if (sizes.some((n) => !Number.isInteger(n) || n < 1 || n > 20)) throw new Error('--nodes: sizes 1 to 20')
if (!(window_ms > 0 && settle_ms >= 0 && Number.isInteger(rounds) && rounds >= 1))
  throw new Error('--window-s, --settle-s, --rounds: positive numbers')
const say = (line: string) => process.stderr.write(`${line}\n`)
const load = () => loadavg().map((x) => Number(x.toFixed(1)))
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * Bytes through lo: test/loopback-only.sh gives the run a network namespace of its own, so this is the
 * federation's traffic (overlay, DHT with the testnet's nodes, lanes, the probes' SMTP connections).
 */
function loopbackBytes(): number {
  const line = readFileSync('/proc/net/dev', 'utf8')
    .split('\n')
    .find((l) => l.trim().startsWith('lo:'))
  return Number(line?.split(':')[1]?.trim().split(/\s+/)[0] ?? Number.NaN)
}

async function formed(fed: LocalFederation, timeout_ms: number): Promise<number> {
  const server = await fed.server(timeout_ms)
  const deadline = Date.now() + timeout_ms
  for (let attempt = 0; attempt < 10_000 && Date.now() < deadline; attempt++) {
    const statuses = await Promise.all(fed.nodes.map((n) => n.status(2000)))
    const meshed = statuses.every(
      (s) => s !== null && s.peers.filter((p) => p.reachable).length >= fed.nodes.length - 1,
    )
    if (meshed) return server.index
    await sleep(500)
  }
  throw new Error(`not every node reached every other within ${timeout_ms} ms`)
}

async function measure(dir: string, size: number, round: number) {
  const fed = new LocalFederation({
    dir: join(dir, `idle-${size}-${round}`),
    nodes: size,
    snapshot_interval_ms,
  })
  const unhook = fed.stopOnSignals()
  try {
    await fed.start()
    const server = await formed(fed, 180_000)
    await sleep(settle_ms)
    const load_before = load()
    const pids = fed.nodes.map((n) => n.pid!)
    const first = pids.map(usage)
    const lo_first = loopbackBytes()
    const t0 = performance.now()
    await sleep(window_ms)
    const last = pids.map(usage)
    const lo_last = loopbackBytes()
    const seconds = (performance.now() - t0) / 1000
    const pct = (i: number, part: (u: Usage) => number) =>
      ((part(last[i]!) - part(first[i]!)) / 100 / seconds) * 100 // CLK_TCK 100
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length
    const r = (x: number) => Number(x.toFixed(2))
    const all = pids.map((_, i) => i)
    const candidates = all.filter((i) => i !== server)
    return {
      nodes: size,
      round,
      window_s: r(seconds),
      idle_cpu_pct: r(mean(all.map((i) => pct(i, ticks)))),
      server_cpu_pct: r(pct(server, ticks)),
      candidate_cpu_pct: candidates.length ? r(mean(candidates.map((i) => pct(i, ticks)))) : null,
      main_thread_pct: r(mean(all.map((i) => pct(i, (u) => u.main)))),
      other_threads_pct: r(mean(all.map((i) => pct(i, (u) => u.threads)))),
      service_pct: r(mean(all.map((i) => pct(i, (u) => u.children)))),
      // Every byte on lo is sent by one process of the run and received by another: per node both ways.
      control_bytes_per_s: Math.round(((lo_last - lo_first) * 2) / size / seconds),
      load_before,
      load_after: load(),
    }
  } finally {
    await fed.stop()
    unhook()
  }
}

const dir = await mkdtemp(join(tmpdir(), 'sustain-bench-idle-'))
try {
  for (let round = 0; round < rounds; round++) {
    for (const size of sizes) {
      const result = await measure(dir, size, round)
      process.stdout.write(`${JSON.stringify(result)}\n`)
    }
  }
} catch (error) {
  say(String(error))
  process.exitCode = 1
} finally {
  await rm(dir, { recursive: true, force: true })
}
