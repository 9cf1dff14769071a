/**
 * CLI start-up: wall time of `sustain --version` and `sustain status` (against a running node of a
 * 2-node local federation) from spawn to exit, for each way of running the CLI, in alternating rounds
 * (the variant that goes first rotates), after one unmeasured warm-up round each (tsx's transform
 * cache, the page cache). Appends the run to bench/results/cli.json (every run is kept, with its commit
 * and load: a run under load is never replaced by a quieter one) and writes the "## CLI start" section of
 * bench/RESULTS.md from that file: the newest run in full, every run in a line.
 * Variants: `compiled` (bin/sustain.js running dist/, what `npm ci` leaves), `npx` (the same through
 * `npx sustain`, as README writes it: npm's own start-up on top), `tsx` (the same bin with
 * SUSTAIN_SOURCES=1: the sources through tsx, as in development) and, with --baseline COMMIT (default:
 * the commit before the compiled CLI), `baseline`: that commit's bin/sustain.js from `git archive`; and
 * `node`, the floor: `node -e 0` timed the same way.
 * Usage: bash test/loopback-only.sh npx tsx bench/cli.ts [--rounds N] [--baseline COMMIT|none]
 */
import { execFile, execFileSync } from 'node:child_process'
import { mkdir, mkdtemp, readFile, rm, symlink } from 'node:fs/promises'
import { cpus, loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { writeFileAtomic } from '../lib/atomic-write.ts'
import { buildCli } from '../src/cli/build.ts'
import { LocalFederation } from '../src/demo/local-federation.ts'
import { markdownTable, replaceSection } from './lib/results-md.ts'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const BASELINE_COMMIT = '36c3a97' // main before the compiled CLI: every command's modules loaded through tsx
const TARGET_MS = { version: 150, status: 300 }
const RESULTS_JSON = join(ROOT, 'bench', 'results', 'cli.json')

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '15' },
    baseline: { type: 'string', default: BASELINE_COMMIT },
  },
})
const ROUNDS = Number(values.rounds)
if (!Number.isInteger(ROUNDS) || ROUNDS < 3 || ROUNDS > 200) throw new Error('--rounds: 3 to 200')

interface Variant {
  name: string
  /** The program started (node unless said). */
  command?: string
  /** Its arguments for the CLI's arguments. */
  argv(args: string[]): string[]
  env: NodeJS.ProcessEnv
}

/** Wall milliseconds from spawn to exit; a non-zero exit is an error (a benchmark of a failure is void). */
function timed(variant: Variant, args: string[]): Promise<number> {
  const started = performance.now()
  return new Promise((resolve, reject) => {
    const options = { env: variant.env, cwd: ROOT, timeout: 60_000 }
    execFile(variant.command ?? process.execPath, variant.argv(args), options, (error) => {
      if (error) reject(new Error(`${variant.name} ${args.join(' ')}: ${error.message}`))
      else resolve(performance.now() - started)
    })
  })
}

const round1 = (x: number) => Math.round(x * 10) / 10
function summary(samples: number[]) {
  const sorted = [...samples].sort((a, b) => a - b)
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!
  return {
    median_ms: round1(at(0.5)),
    p25_ms: round1(at(0.25)),
    p75_ms: round1(at(0.75)),
    min_ms: round1(sorted[0]!),
    max_ms: round1(sorted[sorted.length - 1]!),
    samples_ms: samples.map(round1),
  }
}

/** The baseline's sources from git (no worktree), sharing our node_modules. */
async function baselineTree(commit: string, dir: string): Promise<string> {
  const script = 'set -o pipefail; git -C "$0" archive --format=tar "$1" | tar -x -C "$2"'
  execFileSync('bash', ['-c', script, ROOT, commit, dir], { stdio: ['ignore', 'ignore', 'inherit'] })
  await symlink(join(ROOT, 'node_modules'), join(dir, 'node_modules'))
  return join(dir, 'bin', 'sustain.js')
}

const dir = await mkdtemp(join(tmpdir(), 'sustain-bench-cli-'))
const federation = new LocalFederation({ dir: join(dir, 'federation'), nodes: 2 })
const stop = async () => {
  await federation.stop()
  await rm(dir, { recursive: true, force: true })
}
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => void stop().finally(() => process.exit(130)))
}

try {
  await buildCli()
  const bin = join(ROOT, 'bin', 'sustain.js')
  const { SUSTAIN_SOURCES: _, ...env } = process.env
  const variants: Variant[] = [
    { name: 'compiled', argv: (args) => [bin, ...args], env },
    { name: 'tsx', argv: (args) => [bin, ...args], env: { ...env, SUSTAIN_SOURCES: '1' } },
    { name: 'npx', command: 'npx', argv: (args) => ['sustain', ...args], env }, // compiled, through npm's npx
    { name: 'node', argv: () => ['-e', '0'], env }, // the floor: node starting and exiting
  ]
  if (values.baseline !== 'none') {
    const tree = join(dir, 'baseline')
    await mkdir(tree)
    const baseline_bin = await baselineTree(values.baseline, tree)
    variants.push({ name: 'baseline', argv: (args) => [baseline_bin, ...args], env })
  }
  await mkdir(join(dir, 'federation'))
  await federation.start()
  const server = await federation.server(60_000)
  const commands = { version: ['--version'], status: ['status', '--data', server.data_dir] }

  const load_before = loadavg()
  const samples: Record<string, Record<string, number[]>> = {}
  for (const v of variants) samples[v.name] = { version: [], status: [] }
  for (let round = -1; round < ROUNDS; round++) {
    const order = variants.map((_, i) => variants[(i + Math.max(round, 0)) % variants.length]!)
    for (const [command, args] of Object.entries(commands)) {
      for (const v of order) {
        const ms = await timed(v, args)
        if (round >= 0) samples[v.name]![command]!.push(ms) // round -1: warm-up
      }
    }
  }
  const load_after = loadavg()

  const results: CliRun = {
    generated_at: new Date().toISOString(),
    commit: execFileSync('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim(),
    machine: { cpus: cpus().length, cpu_model: cpus()[0]?.model ?? 'unknown', node: process.version },
    load_1m: { before: round1(load_before[0]!), after: round1(load_after[0]!) },
    rounds: ROUNDS,
    baseline_commit: values.baseline === 'none' ? null : values.baseline,
    target_ms: TARGET_MS,
    variants: Object.fromEntries(
      variants.map((v) => [
        v.name,
        { version: summary(samples[v.name]!.version!), status: summary(samples[v.name]!.status!) },
      ]),
    ),
  }
  console.log(JSON.stringify(results, null, 2))
  await mkdir(join(ROOT, 'bench', 'results'), { recursive: true })
  const runs = [...(await previousRuns()), results]
  await writeFileAtomic(RESULTS_JSON, `${JSON.stringify({ runs }, null, 2)}\n`)
  await writeSection(runs)
} finally {
  await stop()
}

type Summary = ReturnType<typeof summary>
interface CliRun {
  generated_at: string
  /** The commit measured (runs before this field was kept have none). */
  commit?: string
  machine: { cpus: number; cpu_model: string; node?: string }
  load_1m: { before: number; after: number }
  rounds: number
  baseline_commit: string | null
  target_ms?: typeof TARGET_MS
  variants: Record<string, Record<'version' | 'status', Summary>>
}

/** Runs kept so far: `{ runs }`, or the single run an earlier version of this bench wrote. */
async function previousRuns(): Promise<CliRun[]> {
  const text = await readFile(RESULTS_JSON, 'utf8').catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return null
    throw error
  })
  if (text === null) return []
  const kept = JSON.parse(text) as { runs?: CliRun[] } & Partial<CliRun>
  if (Array.isArray(kept.runs)) return kept.runs
  if (kept.variants === undefined) throw new Error(`${RESULTS_JSON}: neither { runs } nor one run`)
  return [kept as CliRun]
}

async function writeSection(runs: CliRun[]): Promise<void> {
  const results = runs.at(-1)!
  const describe: Record<string, string> = {
    compiled: 'bin/sustain.js, dist/ (npm ci)',
    tsx: 'bin/sustain.js, sources through tsx (SUSTAIN_SOURCES=1)',
    baseline: `${results.baseline_commit}: bin/sustain.js through tsx, every command loaded`,
    node: 'the floor: `node -e 0` in place of the command',
    npx: '`npx sustain` in the checkout: compiled, plus npm starting npx',
  }
  const rows = (['version', 'status'] as const).flatMap((command) =>
    Object.entries(results.variants).map(([name, r]) => [
      command === 'version' ? 'sustain --version' : 'sustain status',
      `${name} (${describe[name]})`,
      r[command].median_ms,
      `${r[command].p25_ms}-${r[command].p75_ms}`,
      `${r[command].min_ms}-${r[command].max_ms}`,
    ]),
  )
  const compiled = results.variants['compiled']!
  const verdict = (command: 'version' | 'status') =>
    `${compiled[command].median_ms} ms (target < ${TARGET_MS[command]} ms: ${compiled[command].median_ms < TARGET_MS[command] ? 'met' : 'NOT met'})`
  await replaceSection(
    join(ROOT, 'bench', 'RESULTS.md'),
    '## CLI start',
    [
      `\`npm run bench:cli\`, newest run: ${results.generated_at}, commit ${results.commit ?? '-'}, ${results.machine.cpus} CPUs (${results.machine.cpu_model}), load 1m ${results.load_1m.before}-${results.load_1m.after}.`,
      "Wall time from spawn to exit of each variant's command line, each variant in turn, the first one rotating",
      `per round, ${results.rounds} rounds after one unmeasured warm-up; \`status\` asks the running node of a`,
      '2-node local federation. Spread: interquartile range and min-max.',
      '',
      markdownTable(['command', 'variant', 'median ms', 'p25-p75 ms', 'min-max ms'], rows),
      '',
      `Compiled: \`--version\` ${verdict('version')}, \`status\` ${verdict('status')}.`,
      '',
      'Every run kept (medians in ms; the floor is `node -e 0` in the same run):',
      '',
      markdownTable(
        ['date', 'commit', 'load 1m', 'rounds', '--version compiled / floor', 'status compiled / floor'],
        runs.map((run) => {
          const c = run.variants['compiled']!
          const floor = run.variants['node']
          return [
            run.generated_at,
            run.commit ?? '-',
            `${run.load_1m.before}-${run.load_1m.after}`,
            run.rounds,
            `${c.version.median_ms} / ${floor?.version.median_ms ?? '-'}`,
            `${c.status.median_ms} / ${floor?.status.median_ms ?? '-'}`,
          ]
        }),
      ),
    ].join('\n'),
  )
}
