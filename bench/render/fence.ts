import { markdownTable } from '../lib/results-md.ts'
import type { LegacyMeta, Section } from './section.ts'

export interface FenceResult {
  service: string
  kill: 'pid' | 'group'
  runs: number
  median_ms: number
  max_ms: number
  min_ms: number
  samples_ms: number[]
  /** Lowest and highest 1-minute load average seen after the runs of this row. */
  load_avg_1m: [number, number]
}

export interface FenceRun {
  poll_ms: number
  target_ms?: number
  results: FenceResult[]
}

/** The target of the first run, which did not record it. */
const TARGET_MS = 500

function render(run: FenceRun): string {
  const target = run.target_ms ?? TARGET_MS
  const table = markdownTable(
    ['service', 'SIGKILL of node', 'runs', 'median ms', 'min-max ms', 'load avg 1m'],
    run.results.map((r) => [
      r.service,
      r.kill,
      r.runs,
      r.median_ms,
      `${r.min_ms}-${r.max_ms}`,
      r.load_avg_1m.join('-'),
    ]),
  )
  const worst = Math.max(...run.results.map((r) => r.max_ms))
  return `${table}\n\nSlowest of all runs: ${worst} ms (target: every run < ${target} ms): ${worst < target ? 'met' : '**NOT met**'}.`
}

function summary(run: FenceRun & { date?: string; commit?: string; load_before?: number[] }): string {
  const rows = run.results.map((r) => `${r.service}/${r.kill} ${r.median_ms} (max ${r.max_ms})`).join(', ')
  return `${run.date ?? 'undated'}, commit ${run.commit ?? '?'}, load 1m ${run.load_before?.[0] ?? '?'}: median ms ${rows}`
}

export const fenceSection: Section<FenceRun> = {
  file: 'fence.json',
  heading: 'Fence: a service never outlives its node',
  method: [
    'bench/fence.ts. For each service (the example mail service, real Postfix, the example QEMU guest) and each',
    'way of killing the node process (SIGKILL of its pid alone, or of its process group): a node stand-in',
    '(createDriver + start, as `sustain join` does) starts the service, a client loads it (mail: SMTP sends;',
    'guest: reads of its counter port), the node is SIGKILLed, and the time until every process of its service',
    'is gone (zombies count as gone) and the service port refuses connections is read from /proc every 1 ms.',
    'Runs per row as the table says (the QEMU guest boots slowly under TCG: fewer); the rounds above are the fewest.',
  ].join('\n'),
  render,
  summary,
  legacy: (run: FenceRun): LegacyMeta => ({
    command: 'npm run bench:fence',
    rounds: Math.min(...run.results.map((r) => r.runs)),
  }),
}
