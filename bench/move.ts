/**
 * Move benchmark (issue 26). Two parts:
 * - seed004: seed 004's experiment in simulation (bench/move/precopy-sim.ts): its fixed and variable
 *   file sets at 5, 10, 30 and 100 Mbit/s on a token-bucket link, the planner of
 *   src/move/precopy-plan.ts beside fixed-order iterative pre-copy (10 rounds), same updates for both.
 * - standby: failover after SIGKILL of the server with `service.standby: warm` and `cold` (3 real node
 *   processes serving examples/mail on a loopback testnet, a few MB of mail as state): time from the
 *   kill to the successor's `service_answering`, and the materialise step alone.
 * Usage: bash test/loopback-only.sh npx tsx bench/move.ts [--quick] [--runs N]
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { sendMail } from '../examples/mail/smtp-client.ts'
import { LocalFederation, type LocalNode, type LogRecord } from '../src/demo/local-federation.ts'
import { controlRequest } from '../src/runtime/control-client.ts'
import { nodePaths } from '../src/runtime/paths.ts'
import { keepRun } from './lib/results-file.ts'
import { benchCommand, type RunMeta, startRun } from './lib/run-meta.ts'
import { spread } from './lib/stats.ts'
import { type Comparison, compare, fixedSet, type SimFile, variableSet } from './move/precopy-sim.ts'
import type { MoveRun, Seed004Row, StandbyMode } from './render/move.ts'
import { renderResults } from './render/results-md.ts'

const { values } = parseArgs({
  options: { quick: { type: 'boolean', default: false }, runs: { type: 'string' } },
})
const RUNS = Number(values.runs ?? (values.quick ? 3 : 10))
const MBPS = [5, 10, 30, 100]
/** The monitoring period (seed 004 does not give one) and the history window the planner estimates from. */
const PERIOD_S = 60
const WINDOW_PERIODS = 10
const SWEEP_PERIODS_S = [10, 60, 300]

function row(c: Comparison): Seed004Row {
  const side = (r: Comparison['planned']) => ({
    precopy_mb: Math.round(r.precopy_bytes / 1e6),
    final_mb: Math.round(r.final_bytes / 1e6),
    downtime_s: Math.round(r.downtime_s * 10) / 10,
    rounds: r.rounds,
    stop: r.stop,
  })
  return {
    mbps: c.mbps,
    precopy_reduction_pct: c.precopy_reduction_pct,
    final_reduction_pct: c.final_reduction_pct,
    planned: side(c.planned),
    fixed_order: side(c.fixed_order),
  }
}

function simulate(files: SimFile[], period_s: number): Seed004Row[] {
  return MBPS.map((mbps) =>
    row(compare(files, { mbps, period_s, window_periods: WINDOW_PERIODS, bucket_bytes: 65_536, seed: 1 })),
  )
}

const after =
  (name: string, t: number, extra: (r: LogRecord) => boolean = () => true) =>
  (r: LogRecord) =>
    r.event === name && Number(r.time) >= t && extra(r)

/** Restarts killed nodes and waits until every node follows one server. */
async function settle(fed: LocalFederation): Promise<LocalNode> {
  for (const node of fed.nodes) if (!node.running) node.start()
  const server = await fed.server(60_000)
  const key = (await server.status())?.node.key
  for (const node of fed.nodes)
    for (let i = 0; i < 200 && (await node.status(1000))?.node.server !== key; i++)
      await new Promise((resolve) => setTimeout(resolve, 50))
  return server
}

async function standby(mode: 'warm' | 'cold'): Promise<StandbyMode> {
  const dir = await mkdtemp(join(tmpdir(), `sustain-bench-move-${mode}-`))
  const fed = new LocalFederation({ dir, nodes: 3, snapshot_interval_ms: 60_000, standby: mode })
  const answer_ms: number[] = []
  const materialise_ms: number[] = []
  const decode_ms: number[] = []
  let state_bytes = 0
  try {
    await fed.start()
    for (let run = 0; run < RUNS; run++) {
      const server = await settle(fed)
      await server.waitFor((r) => r.event === 'driver' && r.kind === 'answering', 30_000, 'answering')
      // State worth decoding: 8 MB of mail in the first run (kept by every later snapshot).
      const mails = run === 0 ? 8 : 1
      for (let n = 0; n < mails; n++)
        await sendMail({
          port: server.port,
          from: 'bench@example.org',
          to: ['alice@example.org'],
          subject: `ballast ${run}.${n}`,
          text: `${'x'.repeat(1023)}\n`.repeat(1024),
          timeout_ms: 30_000,
        })
      const asked = Date.now()
      await controlRequest(nodePaths(server.data_dir).socket, { cmd: 'snapshot' }, () => {})
      const taken = await server.waitFor(after('snapshot_taken', asked), 30_000, 'snapshot')
      const others = fed.nodes.filter((n) => n !== server).sort((a, b) => a.index - b.index)
      const top = others[0]!
      await top.waitFor(
        after('snapshot_collected', asked, (r) => r.id === taken.id),
        60_000,
        'collected',
      )
      if (mode === 'warm') {
        const warmed = await top.waitFor(
          after('standby_warmed', asked, (r) => r.id === taken.id),
          60_000,
          'warm',
        )
        decode_ms.push(Number(warmed.decode_ms))
        state_bytes = Number(warmed.bytes)
      }
      const killed = Date.now()
      server.signal('SIGKILL')
      const { node, record } = await LocalFederation.first(
        others,
        after('service_answering', killed),
        60_000,
        'answering',
      )
      answer_ms.push(Number(record.time) - killed)
      const m = await node.waitFor(after('state_materialised', killed), 10_000, 'materialised')
      materialise_ms.push(Number(m.ms))
      if (mode === 'warm' && m.warm !== true) process.stderr.write(`run ${run}: warm copy not used\n`)
    }
  } finally {
    await fed.stop()
    await rm(dir, { recursive: true, force: true })
  }
  const p50 = (xs: number[]) => (xs.length ? spread(xs).median : null)
  return {
    runs: answer_ms.length,
    answer_p50_ms: p50(answer_ms)!,
    answer_ms,
    materialise_p50_ms: p50(materialise_ms)!,
    materialise_ms,
    ...(mode === 'warm' ? { decode_per_snapshot_p50_ms: p50(decode_ms), extra_disk_bytes: state_bytes } : {}),
  }
}

const finish = startRun(benchCommand('bench:move'), RUNS)
const fixed = simulate(fixedSet(), PERIOD_S)
const variable = simulate(variableSet(), PERIOD_S)
process.stdout.write(`seed004 done (period ${PERIOD_S} s)\n`)
const sweep = values.quick
  ? undefined
  : SWEEP_PERIODS_S.filter((p) => p !== PERIOD_S).map((period_s) => ({
      period_s,
      fixed: simulate(fixedSet(), period_s),
      variable: simulate(variableSet(), period_s),
    }))
const warm = await standby('warm')
const cold = await standby('cold')
const run: MoveRun & RunMeta = {
  seed004: {
    period_s: PERIOD_S,
    window_periods: WINDOW_PERIODS,
    fixed,
    variable,
    ...(sweep ? { sweep } : {}),
  },
  standby: {
    process: {
      warm_p50_ms: warm.answer_p50_ms,
      cold_p50_ms: cold.answer_p50_ms,
      warm,
      cold,
    },
  },
  ...finish(),
}
await keepRun('move.json', run)
await renderResults()
process.stdout.write(
  `${JSON.stringify({ fixed: run.seed004.fixed, variable: run.seed004.variable, standby: run.standby }, null, 1)}\n`,
)
