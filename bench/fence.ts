/**
 * Fence benchmark: how long a service outlives its node. For each service (the example mail service,
 * real Postfix, the example QEMU guest) and each way of killing the node process (SIGKILL of its pid
 * alone, of its process group), N runs: a node stand-in (test/fence/node-stand-in.ts: createDriver +
 * start, as `sustain join` does) starts the service, a client loads it (mail: SMTP sends; guest: reads
 * of its counter port), the node is SIGKILLed, and the time until every process of the service is gone
 * and its port refuses connections is measured from /proc (test/fence/remnants.ts, 1 ms polls).
 * Keeps the run in bench/results/fence.json (earlier runs kept) and regenerates bench/RESULTS.md
 * (bench/render/fence.ts). `rounds` is the smaller of --runs and --qemu-runs.
 * Usage: npm run bench:fence [-- --runs N] [--qemu-runs N] [--only mail,postfix,qemu]
 */

import { chmod, mkdtemp, rm } from 'node:fs/promises'
import { loadavg, tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { freePort } from '../src/util/free-port.ts'
import {
  mailLoad,
  processTree,
  type StandIn,
  startStandIn,
  stopStandIns,
  waitRecord,
  waitServiceGone,
} from '../test/fence/remnants.ts'
import { guestFixture, readCounter } from '../test/qemu/guest.ts'
import { keepRun } from './lib/results-file.ts'
import { benchCommand, type RunMeta, startRun } from './lib/run-meta.ts'
import type { FenceResult, FenceRun } from './render/fence.ts'
import { renderResults } from './render/results-md.ts'

const { values } = parseArgs({
  options: {
    runs: { type: 'string' },
    'qemu-runs': { type: 'string' },
    only: { type: 'string', default: 'mail,postfix,qemu' },
  },
})
const RUNS = Number(values.runs ?? 10)
/** A guest boots in tens of seconds under TCG: fewer runs. */
const QEMU_RUNS = Number(values['qemu-runs'] ?? 3)
const SERVICES = values.only!.split(',')
const unknown = SERVICES.filter((s) => !['mail', 'postfix', 'qemu'].includes(s))
if (unknown.length > 0)
  throw new Error(`--only: unknown service(s) ${unknown.join(', ')}; mail, postfix, qemu`)
const GONE_TIMEOUT_MS = 10_000
const TARGET_MS = 500
const ROOT = resolve(import.meta.dirname, '..')

const round = (value: number, digits = 1) => Number(value.toFixed(digits))
const say = (line: string) => process.stderr.write(`${line}\n`)

function stats(values: number[]) {
  const sorted = [...values].sort((a, b) => a - b)
  return {
    runs: sorted.length,
    median_ms: round(sorted[Math.floor((sorted.length - 1) / 2)]!),
    max_ms: round(sorted[sorted.length - 1]!),
    min_ms: round(sorted[0]!),
  }
}

/** A guest reader in a loop (bounded) until stopped: the guest's port stays busy. */
function counterLoad(port: number) {
  let stopped = false
  const done = (async () => {
    for (let i = 0; i < 100_000 && !stopped; i++) await readCounter(port).catch(() => {})
  })()
  return {
    stop: async () => {
      stopped = true
      await done
    },
  }
}

interface Case {
  service: string
  service_dir: string
  answering_timeout_ms: number
  runs: number
  load(port: number): { stop(): Promise<void> }
}

async function measure(
  c: Case,
  scope: 'pid' | 'group',
  dir: string,
  stand_ins: StandIn[],
): Promise<FenceResult> {
  const samples: number[] = []
  const loads: number[] = []
  for (let run = 0; run < c.runs; run++) {
    const data_dir = join(dir, `${c.service}-${scope}-${run}`)
    const port = await freePort()
    const stand_in = await startStandIn(c.service_dir, data_dir, port, stand_ins, c.answering_timeout_ms)
    await waitRecord(
      stand_in,
      (r) => r['event'] === 'driver' && r['kind'] === 'answering',
      c.answering_timeout_ms,
      'answering',
    )
    const load = c.load(port)
    await new Promise((resolve) => setTimeout(resolve, 300)) // the load is under way
    const tree = processTree(stand_in.leader)
    const killed_at = performance.now()
    process.kill(scope === 'pid' ? stand_in.child.pid! : -stand_in.child.pid!, 'SIGKILL')
    const gone_ms = await waitServiceGone(tree, join(data_dir, 'service'), port, killed_at, GONE_TIMEOUT_MS)
    await load.stop()
    await stopStandIns(stand_ins)
    samples.push(gone_ms)
    loads.push(loadavg()[0]!)
    say(`${c.service} ${scope} run ${run + 1}/${c.runs}: ${round(gone_ms, 2)} ms (${tree.size} processes)`)
    await rm(data_dir, { recursive: true, force: true })
  }
  return {
    service: c.service,
    kill: scope,
    ...stats(samples),
    samples_ms: samples.map((s) => round(s, 2)),
    load_avg_1m: [round(Math.min(...loads), 2), round(Math.max(...loads), 2)] as [number, number],
  }
}

const dir = await mkdtemp(join(tmpdir(), 'sustain-bench-fence-'))
await chmod(dir, 0o711) // Postfix's own users must reach its state directory
const stand_ins: StandIn[] = []
const guest = SERVICES.includes('qemu') ? await guestFixture() : undefined
const finish = startRun(
  benchCommand('bench:fence'),
  Math.min(...SERVICES.map((s) => (s === 'qemu' ? QEMU_RUNS : RUNS))),
)
const cleanup = async () => {
  await stopStandIns(stand_ins)
  await guest?.cleanup()
  await rm(dir, { recursive: true, force: true })
}
process.once('SIGINT', () => void cleanup().then(() => process.exit(130)))
try {
  const cases: Case[] = [
    {
      service: 'mail',
      service_dir: join(ROOT, 'examples', 'mail'),
      answering_timeout_ms: 30_000,
      runs: RUNS,
      load: mailLoad,
    },
    {
      service: 'postfix',
      service_dir: join(ROOT, 'examples', 'postfix'),
      answering_timeout_ms: 60_000,
      runs: RUNS,
      load: mailLoad,
    },
    ...(guest
      ? [
          {
            service: 'qemu',
            service_dir: guest.service_dir,
            answering_timeout_ms: 180_000,
            runs: QEMU_RUNS,
            load: counterLoad,
          },
        ]
      : []),
  ].filter((c) => SERVICES.includes(c.service))
  const results: FenceResult[] = []
  for (const c of cases) {
    for (const scope of ['pid', 'group'] as const) results.push(await measure(c, scope, dir, stand_ins))
  }
  const run: FenceRun & RunMeta = { poll_ms: 1, target_ms: TARGET_MS, results, ...finish() }
  await keepRun('fence.json', run)
  await renderResults()
  say(JSON.stringify(results.map(({ samples_ms: _, ...r }) => r)))
} finally {
  await cleanup()
}
