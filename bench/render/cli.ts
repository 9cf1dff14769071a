import { markdownTable } from '../lib/results-md.ts'
import type { RunMeta } from '../lib/run-meta.ts'
import type { LegacyMeta, Section } from './section.ts'

/** Wall milliseconds of one command line over the rounds (quartiles and range of `samples_ms`). */
export interface CliSummary {
  median_ms: number
  p25_ms: number
  p75_ms: number
  min_ms: number
  max_ms: number
  samples_ms: number[]
}

export type CliCommand = 'version' | 'status'

export interface CliRun {
  baseline_commit: string | null
  target_ms?: Record<CliCommand, number>
  variants: Record<string, Record<CliCommand, CliSummary>>
}

/** What runs written before RunMeta (`{ runs }` in cli.json) recorded about themselves. */
interface LegacyCliRun extends CliRun {
  generated_at?: string
  load_1m?: { before: number; after: number }
  rounds?: number
  machine?: { cpus: number; cpu_model: string; node?: string }
}

/** The targets of the first runs, which did not record them. */
const TARGET_MS: Record<CliCommand, number> = { version: 150, status: 300 }

const LABEL: Record<CliCommand, string> = { version: 'sustain --version', status: 'sustain status' }

function describe(name: string, run: CliRun): string {
  const text: Record<string, string> = {
    compiled: 'bin/sustain.js, dist/ (npm ci)',
    tsx: 'bin/sustain.js, sources through tsx (SUSTAIN_SOURCES=1)',
    baseline: `${run.baseline_commit}: bin/sustain.js through tsx, every command loaded`,
    node: 'the floor: `node -e 0` in place of the command',
    npx: '`npx sustain` in the checkout: compiled, plus npm starting npx',
  }
  return `${name} (${text[name] ?? 'not described'})`
}

function render(run: CliRun): string {
  const rows = (['version', 'status'] as const).flatMap((command) =>
    Object.entries(run.variants).map(([name, r]) => [
      LABEL[command],
      describe(name, run),
      r[command].median_ms,
      `${r[command].p25_ms}-${r[command].p75_ms}`,
      `${r[command].min_ms}-${r[command].max_ms}`,
    ]),
  )
  const target = run.target_ms ?? TARGET_MS
  const compiled = run.variants['compiled']!
  const verdict = (command: CliCommand) =>
    `${compiled[command].median_ms} ms (target < ${target[command]} ms: ${compiled[command].median_ms < target[command] ? 'met' : '**NOT met**'})`
  return [
    markdownTable(['command', 'variant', 'median ms', 'p25-p75 ms', 'min-max ms'], rows),
    '',
    `Compiled: \`--version\` ${verdict('version')}, \`status\` ${verdict('status')}.`,
  ].join('\n')
}

function legacy(run: LegacyCliRun): LegacyMeta {
  return {
    date: run.generated_at,
    rounds: run.rounds,
    load_before: run.load_1m && [run.load_1m.before],
    load_after: run.load_1m && [run.load_1m.after],
  }
}

function summary(run: LegacyCliRun & Partial<RunMeta>): string {
  const c = run.variants['compiled']!
  const floor = run.variants['node']
  const load = run.load_before
    ? `${run.load_before[0]}-${run.load_after?.[0] ?? '?'}`
    : run.load_1m
      ? `${run.load_1m.before}-${run.load_1m.after}`
      : '?'
  const pair = (command: CliCommand) => `${c[command].median_ms} / ${floor?.[command].median_ms ?? '-'}`
  return `${run.date ?? run.generated_at ?? 'undated'}, commit ${run.commit ?? '?'}, load 1m ${load}, ${run.rounds ?? '?'} rounds: median ms compiled / floor (\`node -e 0\`): \`--version\` ${pair('version')}, \`status\` ${pair('status')}`
}

export const cliSection: Section<CliRun> = {
  file: 'cli.json',
  heading: 'CLI start',
  method: [
    "Wall time from spawn to exit of each variant's command line, each variant in turn, the first one rotating",
    'per round, after one unmeasured warm-up round; `status` asks the running node of a 2-node local federation.',
    'Spread: interquartile range and min-max over the rounds.',
  ].join('\n'),
  render,
  summary,
  legacy,
}
