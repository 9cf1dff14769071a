import { execFileSync } from 'node:child_process'
import { cpus, loadavg, totalmem } from 'node:os'
import { resolve } from 'node:path'

const ROOT = resolve(import.meta.dirname, '..', '..')

/** What every bench/results/*.json records about the run that made it, so a reader can judge it. */
export interface RunMeta {
  /** Short commit measured; `dirty` when the work tree had uncommitted changes. */
  commit: string
  dirty: boolean
  /** ISO time the run ended. */
  date: string
  /** The command line a reader runs to repeat it. */
  command: string
  machine: { cpus: number; cpu_model: string; node: string; mem_gib: number }
  /** Rounds per figure (each figure is a median over this many, unless the suite says otherwise). */
  rounds: number
  /** 1, 5 and 15-minute load averages before the first and after the last measurement. */
  load_before: number[]
  load_after: number[]
}

function git(args: string[]): string {
  try {
    return execFileSync('git', ['-C', ROOT, ...args], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim()
  } catch {
    return ''
  }
}

function load(): number[] {
  return loadavg().map((x) => Math.round(x * 100) / 100)
}

/** Call when measuring starts; the returned function, when it ends, gives the run's metadata. */
export function startRun(command: string, rounds: number): () => RunMeta {
  if (!Number.isInteger(rounds) || rounds < 1)
    throw new Error(`rounds must be a positive integer, got ${rounds}`)
  const load_before = load()
  return () => ({
    commit: git(['rev-parse', '--short', 'HEAD']) || 'unknown',
    dirty: git(['status', '--porcelain', '--untracked-files=no']) !== '',
    date: new Date().toISOString(),
    command,
    machine: {
      cpus: cpus().length,
      cpu_model: cpus()[0]?.model ?? 'unknown',
      node: process.version,
      mem_gib: Math.round(totalmem() / 2 ** 30),
    },
    rounds,
    load_before,
    load_after: load(),
  })
}

/** The command line that repeats this run: `npm run <script> -- <its arguments>`. */
export function benchCommand(script: string, argv: readonly string[] = process.argv.slice(2)): string {
  return [`npm run ${script}`, ...(argv.length > 0 ? ['--', ...argv] : [])].join(' ')
}
