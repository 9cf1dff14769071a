/**
 * Output commit for a QEMU service (issue 18, its QEMU part): what zero-loss mode costs a guest. The
 * example guest (examples/qemu-guest, 128 MiB, TCG unless KVM proves usable) on three `sustain join`
 * processes; one client sends line after line (one at a time) to its acknowledging line service
 * (ack.sh) through a candidate's front door (client port `ack`, a hostfwd into the guest). Per round, a
 * fresh federation with `output_commit` off, then another with k = 1; per mode: acks per second and the
 * client's send-to-"OK" latency over the steady window, and with k = 1 the server's freeze-to-release
 * time of each release (`output_released` commit_ms) and its capture pauses. Figures: median (min-max)
 * over the rounds of each round's median. Keeps the run in bench/results/qemu-zero-loss.json and
 * regenerates bench/RESULTS.md (bench/render/qemu-zero-loss.ts).
 * Usage: npm run bench:qemu-zero-loss [-- --quick]   (quick: 2 rounds of 20 s; else 3 of 40 s)
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { LocalFederation, type LogRecord } from '../src/demo/local-federation.ts'
import { freePort } from '../src/util/free-port.ts'
import { AckClient } from '../test/qemu/ack-client.ts'
import { guestFixture, relaxProbe } from '../test/qemu/guest.ts'
import { keepRun } from './lib/results-file.ts'
import { benchCommand, type RunMeta, startRun } from './lib/run-meta.ts'
import type { QemuZeroLossMode, QemuZeroLossRun, Spread } from './render/qemu-zero-loss.ts'
import { renderResults } from './render/results-md.ts'

const { values } = parseArgs({ options: { quick: { type: 'boolean', default: false } } })
const QUICK = values.quick === true
const ROUNDS = QUICK ? 2 : 3
const STEADY_MS = QUICK ? 20_000 : 40_000
/** Acks before the steady window opens (the guest answered, the first snapshots are out). */
const WARMUP_ACKS = 3
const SNAPSHOT_INTERVAL_MS = 5000
/** TCG boot on 2 shared cores under load. */
const SERVE_TIMEOUT_MS = 240_000
const MODES = { off: 'off', k1: 1 } as const

const sleep = (ms: number) => new Promise((ok) => setTimeout(ok, ms))
const median = (xs: number[]) =>
  xs.length === 0 ? Number.NaN : [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!
const round1 = (x: number) => Math.round(x * 10) / 10
/** Over the rounds that have the figure (a round with no ack or no capture in its window has none). */
function spread(values: number[], scale = 10): Spread | null {
  const xs = values.filter(Number.isFinite)
  if (xs.length === 0) return null
  const r = (x: number) => Math.round(x * scale) / scale
  return { median: r(median(xs)), min: r(Math.min(...xs)), max: r(Math.max(...xs)) }
}
function say(message: string): void {
  process.stderr.write(`[bench:qemu-zero-loss] ${message} (load ${loadavg()[0]!.toFixed(1)})\n`)
}

interface RoundFigures {
  acks: number
  seconds: number
  latency_ms: number[]
  commit_ms: number[]
  pause_ms: number[]
  snapshots: number
}

/** One federation in one mode: the client's acks over the steady window and the server's records in it. */
async function oneRound(service_dir: string, mode: number | 'off'): Promise<RoundFigures> {
  const dir = await mkdtemp(join(tmpdir(), 'sustain-bench-qemu-zl-'))
  const ack_ports = [await freePort(), await freePort(), await freePort()]
  const fed = new LocalFederation({
    dir,
    nodes: 3,
    service_dir,
    snapshot_interval_ms: SNAPSHOT_INTERVAL_MS,
    front_door: { port_name: 'ack', hold_ms: SERVE_TIMEOUT_MS },
    output_commit: mode,
    service_ports: (i) => ({ ack: ack_ports[i]! }),
  })
  const release = fed.stopOnSignals()
  let client: AckClient | null = null
  try {
    await fed.start()
    const server = await fed.server(SERVE_TIMEOUT_MS)
    await server.waitFor((r) => r.event === 'service_answering', SERVE_TIMEOUT_MS, 'answering')
    const candidate = fed.nodes.find((n) => n !== server)!
    client = new AckClient('b', [candidate.front_door!])
    client.start()
    const c = client
    for (let i = 0; c.acked.length < WARMUP_ACKS; i++) {
      if (i > SERVE_TIMEOUT_MS / 100) throw new Error(`${WARMUP_ACKS} acks not within ${SERVE_TIMEOUT_MS} ms`)
      await sleep(100)
    }
    const from_ms = Date.now()
    await sleep(STEADY_MS)
    const to_ms = Date.now()
    await client.stop()
    const inside = (t: number) => t >= from_ms && t <= to_ms
    const acked = client.acked.filter((a) => inside(a.at_ms))
    const records = (name: string) =>
      server.records.filter((r: LogRecord) => r.event === name && inside(Number(r.time)))
    return {
      acks: acked.length,
      seconds: (to_ms - from_ms) / 1000,
      latency_ms: acked.map((a) => a.latency_ms),
      commit_ms: records('output_released').map((r) => Number(r.commit_ms)),
      pause_ms: records('service_paused').map((r) => Number(r.pause_ms)),
      snapshots: records('snapshot_taken').length,
    }
  } finally {
    await client?.stop()
    release()
    await fed.stop()
    await rm(dir, { recursive: true, force: true })
  }
}

const guest = await guestFixture()
await relaxProbe(guest.service_dir, 15_000) // a probe timing out under load reboots the guest
const finish = startRun(benchCommand('bench:qemu-zero-loss'), ROUNDS)
const rounds: Record<string, RoundFigures[]> = { off: [], k1: [] }
try {
  for (let r = 0; r < ROUNDS; r++) {
    // Alternating order: a drift in load over the run does not always favour the same mode.
    const order = r % 2 === 0 ? Object.entries(MODES) : Object.entries(MODES).reverse()
    for (const [name, mode] of order) {
      const figures = await oneRound(guest.service_dir, mode)
      rounds[name]!.push(figures)
      say(
        `round ${r + 1}/${ROUNDS} ${name}: ${figures.acks} acks in ${figures.seconds.toFixed(1)} s, latency median ${median(figures.latency_ms).toFixed(0)} ms, commit median ${median(figures.commit_ms).toFixed(0)} ms, ${figures.snapshots} snapshots`,
      )
    }
  }
} finally {
  await guest.cleanup()
}

const modes: Record<string, QemuZeroLossMode> = {}
for (const [name, list] of Object.entries(rounds)) {
  const all_latency = list.flatMap((f) => f.latency_ms)
  modes[name] = {
    acks: list.reduce((s, f) => s + f.acks, 0),
    // Two decimals: a guest under TCG acknowledges a few lines per minute with output commit.
    acks_per_s: spread(
      list.map((f) => f.acks / f.seconds),
      100,
    )!,
    ack_latency_ms: spread(list.map((f) => median(f.latency_ms))),
    ack_latency_max_ms: all_latency.length === 0 ? null : round1(Math.max(...all_latency)),
    commit_ms: spread(list.map((f) => median(f.commit_ms))),
    releases: list.reduce((s, f) => s + f.commit_ms.length, 0),
    pause_ms: spread(list.map((f) => median(f.pause_ms))),
    snapshots_per_s: spread(list.map((f) => f.snapshots / f.seconds))!,
  }
}
const run: QemuZeroLossRun & RunMeta = {
  quick: QUICK,
  steady_ms: STEADY_MS,
  snapshot_interval_ms: SNAPSHOT_INTERVAL_MS,
  modes,
  added_latency_ms:
    modes['k1']!.ack_latency_ms && modes['off']!.ack_latency_ms
      ? round1(modes['k1']!.ack_latency_ms.median - modes['off']!.ack_latency_ms.median)
      : null,
  ...finish(),
}
await keepRun('qemu-zero-loss.json', run)
await renderResults()
process.stdout.write(`${JSON.stringify(run)}\n`)
