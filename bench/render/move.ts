import { markdownTable } from '../lib/results-md.ts'
import type { Section } from './section.ts'

interface Side {
  precopy_mb: number
  final_mb: number
  downtime_s: number
  rounds: number
  stop: string
}

export interface Seed004Row {
  mbps: number
  precopy_reduction_pct: number
  final_reduction_pct: number
  planned: Side
  fixed_order: Side
}

export interface StandbyMode {
  runs: number
  /** SIGKILL of the server to the successor's `service_answering`. */
  answer_p50_ms: number
  answer_ms: number[]
  /** The restore's materialise step (decode, or the warm copy's swap). */
  materialise_p50_ms: number
  materialise_ms: number[]
  /** Warm only: the decode the top candidate does per snapshot, and the extra state copy on disk. */
  decode_per_snapshot_p50_ms?: number | null
  extra_disk_bytes?: number
}

/** One point of the fixed set with real bytes on a real stream, the simulation of the same set beside it. */
export interface RealPoint {
  /** Every `every`-th file of the fixed set; the period cut by the same factor. */
  every: number
  mbps: number
  period_s: number
  files: number
  set_bytes: number
  precopy_bytes: number
  final_bytes: number
  received_bytes: number
  rounds: number
  stop: string
  downtime_ms: number
  total_ms: number
  achieved_mbps: number
  identical: boolean
  model: { precopy_bytes: number; final_bytes: number; downtime_ms: number; rounds: number; stop: string }
}

export interface MoveRun {
  seed004: {
    period_s: number
    window_periods: number
    fixed: Seed004Row[]
    variable: Seed004Row[]
    sweep?: { period_s: number; fixed: Seed004Row[]; variable: Seed004Row[] }[]
    real_point?: RealPoint
  }
  /** The VM hand-over figures; null while no live move exists (the reason in `not_measured`). */
  vm_move?: { downtime_ms: number; qemu_migrate_downtime_ms: number; stop_restore_ms: number } | null
  standby: {
    process: { warm_p50_ms: number; cold_p50_ms: number; warm: StandbyMode; cold: StandbyMode }
    postfix?: { warm_p50_ms: number; cold_p50_ms: number } | null
    qemu?: { warm_p50_ms: number; cold_p50_ms: number } | null
  }
  /** Why a figure of the shape is null. */
  not_measured?: Record<string, string>
}

/** Seed 004's own reductions (its figures 2-5; 5 to 30 Mbit/s for the fixed set). */
const SEED = {
  fixed: { precopy: '43-94 %', final: '6-65 %' },
  variable: { precopy: '71-93 %', final: '3-10 %' },
}
const SEED_RANGE = {
  fixed: { precopy: [43, 94], final: [6, 65], mbps: [5, 30] },
  variable: { precopy: [71, 93], final: [3, 10], mbps: [5, 100] },
} as const

/**
 * Against the issue's target "beat seed 004's reductions", over the bandwidths the seed's range covers
 * (5-30 Mbit/s for the fixed set, where it says 40+ is about even): met when our smallest cut is at
 * least the seed's smallest and our largest at least its largest.
 */
function verdict(rows: Seed004Row[], set: 'fixed' | 'variable'): string {
  const seed = SEED_RANGE[set]
  const inRange = rows.filter((r) => r.mbps >= seed.mbps[0] && r.mbps <= seed.mbps[1])
  if (inRange.length === 0) return `${set}: no row in ${seed.mbps[0]}-${seed.mbps[1]} Mbit/s`
  const one = (what: 'precopy' | 'final', cuts: number[]) => {
    const lo = Math.min(...cuts)
    const hi = Math.max(...cuts)
    const met = lo >= seed[what][0] && hi >= seed[what][1]
    return `${what === 'precopy' ? 'pre-copy' : 'final copy'} ${lo} to ${hi} % against ${seed[what][0]} to ${seed[what][1]} %: ${met ? 'met' : 'not met'}`
  }
  return `${set} set, ${seed.mbps[0]}-${seed.mbps[1]} Mbit/s: ${one(
    'precopy',
    inRange.map((r) => r.precopy_reduction_pct),
  )}; ${one(
    'final',
    inRange.map((r) => r.final_reduction_pct),
  )}`
}

const mb = (bytes: number) => Math.round(bytes / 1e5) / 10

function realTable(p: RealPoint): string {
  return markdownTable(
    ['', 'pre-copy MB', 'pre-copy MB per round', 'final MB', 'downtime ms', 'rounds (stop)'],
    [
      [
        'real bytes',
        mb(p.precopy_bytes),
        mb(p.precopy_bytes / p.rounds),
        mb(p.final_bytes),
        p.downtime_ms,
        `${p.rounds} (${p.stop})`,
      ],
      [
        'simulation',
        mb(p.model.precopy_bytes),
        mb(p.model.precopy_bytes / p.model.rounds),
        mb(p.model.final_bytes),
        p.model.downtime_ms,
        `${p.model.rounds} (${p.model.stop})`,
      ],
    ],
  )
}

function seedTable(rows: Seed004Row[]): string {
  return markdownTable(
    [
      'Mbit/s',
      'pre-copy MB planned / fixed-order',
      'final MB planned / fixed-order',
      'downtime s planned / fixed-order',
      'rounds (stop) planned / fixed-order',
      'pre-copy cut',
      'final cut',
    ],
    rows.map((r) => [
      r.mbps,
      `${r.planned.precopy_mb} / ${r.fixed_order.precopy_mb}`,
      `${r.planned.final_mb} / ${r.fixed_order.final_mb}`,
      `${r.planned.downtime_s} / ${r.fixed_order.downtime_s}`,
      `${r.planned.rounds} (${r.planned.stop}) / ${r.fixed_order.rounds}`,
      `${r.precopy_reduction_pct} %`,
      `${r.final_reduction_pct} %`,
    ]),
  )
}

const range = (xs: number[]) => `${Math.min(...xs)} to ${Math.max(...xs)} %`

function render(run: MoveRun): string {
  const s = run.seed004
  const parts = [
    `Seed 004's experiment, period ${s.period_s} s, probabilities estimated over the last ${s.window_periods} periods.`,
    '',
    `**Fixed set** (11,000 x 200 KB). Seed 004: pre-copy cut ${SEED.fixed.precopy}, final copy cut ${SEED.fixed.final}.`,
    '',
    seedTable(s.fixed),
    '',
    `**Variable set** (100-1,000 KB). Seed 004: pre-copy cut ${SEED.variable.precopy}, final copy cut ${SEED.variable.final}.`,
    '',
    seedTable(s.variable),
  ]
  if (s.sweep) {
    parts.push(
      '',
      'The period is the assumption the paper leaves open; cuts (pre-copy / final) at other periods:',
      '',
    )
    const all = [{ period_s: s.period_s, fixed: s.fixed, variable: s.variable }, ...s.sweep].sort(
      (a, b) => a.period_s - b.period_s,
    )
    parts.push(
      markdownTable(
        [
          'period s',
          ...s.fixed.map((r) => `fixed ${r.mbps}`),
          ...s.variable.map((r) => `variable ${r.mbps}`),
        ],
        all.map((p) => [
          p.period_s,
          ...[...p.fixed, ...p.variable].map((r) => `${r.precopy_reduction_pct} / ${r.final_reduction_pct}`),
        ]),
      ),
    )
  }
  parts.push(
    '',
    `Figures above are a deterministic model (virtual time, token bucket, the real planner, a seeded update process), not bytes on a wire. Target (beat seed 004's reductions): ${verdict(s.fixed, 'fixed')}. ${verdict(s.variable, 'variable')}.`,
  )
  const p = s.real_point
  if (p)
    parts.push(
      '',
      `**One point with real bytes** (every ${p.every}th file of the fixed set: ${p.files} files, ${mb(p.set_bytes)} MB; ${p.mbps} Mbit/s token bucket on a TCP stream over 127.0.0.1, period ${p.period_s} s, under-${Math.max(1, Math.round(50 / p.every))}-units limit scaled likewise; the simulation of the same set and seed beside it). Destination equals source byte for byte after the final copy: ${p.identical ? 'yes' : 'NO'}; the receiver got ${mb(p.received_bytes)} MB (pre-copy + final ${mb(p.precopy_bytes + p.final_bytes)} MB); ${p.achieved_mbps} Mbit/s achieved over the move (idle waits at period ends included); real downtime includes the receiver's file writes. On a set this small the round the plateau rule fires at depends on when, to the millisecond, each change lands beside each send, so the pre-copy totals can differ by whole rounds: compare the bytes per round (below a period's ${mb((p.mbps * 1e6 * p.period_s) / 8)} MB where the real stream falls short of the rate or a round has less left to send).`,
      '',
      realTable(p),
    )
  const { warm, cold } = run.standby.process
  parts.push(
    '',
    '**Warm vs cold standby** (process mail service, SIGKILL of the server):',
    '',
    markdownTable(
      [
        'standby',
        'runs',
        'kill to answering p50 ms',
        'materialise p50 ms',
        'decode per snapshot p50 ms',
        'extra disk',
      ],
      [
        [
          'warm',
          warm.runs,
          warm.answer_p50_ms,
          warm.materialise_p50_ms,
          warm.decode_per_snapshot_p50_ms ?? '-',
          `${Math.round((warm.extra_disk_bytes ?? 0) / 1e5) / 10} MB`,
        ],
        ['cold', cold.runs, cold.answer_p50_ms, cold.materialise_p50_ms, '-', '-'],
      ],
    ),
    '',
    `Fixed set cuts: pre-copy ${range(s.fixed.map((r) => r.precopy_reduction_pct))}, final ${range(s.fixed.map((r) => r.final_reduction_pct))}; variable set: pre-copy ${range(s.variable.map((r) => r.precopy_reduction_pct))}, final ${range(s.variable.map((r) => r.final_reduction_pct))}.`,
  )
  if (run.not_measured) {
    parts.push('', 'Not measured (null in the JSON):', '')
    for (const [what, why] of Object.entries(run.not_measured)) parts.push(`- ${what}: ${why}`)
  }
  return parts.join('\n')
}

function summary(run: MoveRun & { date?: string; commit?: string; load_before?: number[] }): string {
  const s = run.seed004
  return `${run.date ?? 'undated'}, commit ${run.commit ?? '?'}, load 1m ${run.load_before?.[0] ?? '?'}: fixed pre-copy cut ${range(s.fixed.map((r) => r.precopy_reduction_pct))}, final ${range(s.fixed.map((r) => r.final_reduction_pct))}; warm/cold p50 ${run.standby.process.warm_p50_ms}/${run.standby.process.cold_p50_ms} ms`
}

export const moveSection: Section<MoveRun> = {
  file: 'move.json',
  heading: 'Move: pre-copy ordered by update expectation, warm standby',
  method: [
    'bench/move.ts. Seed 004 in simulation (bench/move/precopy-sim.ts, virtual time, seeded): each file of a set',
    'changes at most once per period with its probability, at a uniform time; a token bucket (64 KiB deep) carries',
    'the transfer. The planner (src/move/precopy-plan.ts) re-plans at every pass over what is untransferred',
    '(read-only first, then ascending estimated probability x size, probabilities from the last periods seen; a pass',
    'ends with its period, or earlier when its plan runs out: then the classic limits are asked and the next starts) and',
    'stops by the first of: plateau (seed 004, beta 6), under 50 dirty files, 29 periods, 3x the set sent (judged only',
    'once every read-only file went, as the seed does). Fixed-order',
    'pre-copy sends everything in one fixed (shuffled, directory-like) order, then 10 rounds of what changed. Both see',
    'the same updates. Cut = 1 - planned / fixed-order. Downtime = final copy bytes / link rate.',
    'Standby: 3 real nodes (examples/mail, ~8 MB of mail), snapshot on request, SIGKILL of the server once the top',
    "candidate collected (warm: and decoded) it; kill to the successor's service_answering, and its materialise step.",
  ].join('\n'),
  render,
  summary,
}
