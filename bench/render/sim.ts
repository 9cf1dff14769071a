import { markdownTable } from '../lib/results-md.ts'
import type { LegacyMeta, Section } from './section.ts'

export interface SimCase {
  nodes: number
  seeds: number
  simulated_s: number
  wall_s: number
  simulated_s_per_wall_s: number
  elections: number
  violations: number
}

export interface SimRun {
  quick: boolean
  cases: SimCase[]
}

function render(run: SimRun): string {
  const table = markdownTable(
    ['nodes', 'seeds', 'simulated s', 'wall s', 'simulated s / wall s', 'elections', 'violations'],
    run.cases.map((r) => [
      r.nodes,
      r.seeds,
      r.simulated_s,
      r.wall_s,
      r.simulated_s_per_wall_s,
      r.elections,
      r.violations,
    ]),
  )
  const violations = run.cases.reduce((sum, c) => sum + c.violations, 0)
  return `${table}\n\nViolations over all seeds: ${violations} (must be 0): ${violations === 0 ? 'met' : '**NOT met**'}.`
}

function summary(run: SimRun & { date?: string; commit?: string; load_before?: number[] }): string {
  const rates = run.cases.map((c) => `${c.nodes} nodes ${c.simulated_s_per_wall_s}`).join(', ')
  return `${run.date ?? 'undated'}, commit ${run.commit ?? '?'}, load 1m ${run.load_before?.[0] ?? '?'}: simulated s per wall s ${rates}`
}

export const simSection: Section<SimRun> = {
  file: 'sim.json',
  heading: 'Simulator',
  method: [
    'Speed of the deterministic simulator (test/sim) on one core: each seed simulates a 50 s fault phase and a',
    '40 s quiet phase of the federation; simulated seconds per wall second over all seeds of a case. There is',
    'no peer tool for this figure: it says how many seeds a CI minute buys. One pass per case.',
  ].join('\n'),
  render,
  summary,
  legacy: (run: SimRun): LegacyMeta => ({
    command: `npm run bench:sim${run.quick ? ' -- --quick' : ''}`,
    rounds: 1,
  }),
}
