import type { RunMeta } from '../lib/run-meta.ts'

/**
 * What a run written before RunMeta recorded about itself, in its own fields (a date, a load average,
 * a round count, the command's flags), said in RunMeta's terms. Only what the run recorded: nothing
 * is guessed.
 */
export interface LegacyMeta {
  command?: string
  date?: string
  rounds?: number
  /** Load averages as recorded: [1 min] or [1, 5, 15 min]. */
  load_before?: number[]
  load_after?: number[]
}

/** One `## ` section of bench/RESULTS.md, rendered from one results file and nothing else. */
export interface Section<R extends object = any> {
  /** File under bench/results/. */
  file: string
  /** The section's heading, without `## `. */
  heading: string
  /** The command that writes the file, when it is not `npm run bench:<file name>`. */
  command?: string
  /** What the suite measures and how (method, peers, what differs between them): fixed text of the suite. */
  method: string
  /** The newest run in full: tables and verdicts against targets. */
  render(run: R & Partial<RunMeta>): string
  /** One line for each earlier run kept in the file (its headline figures), or undefined to list none. */
  summary?(run: R & Partial<RunMeta>): string
  /** For runs without RunMeta: the metadata they recorded in fields of their own. */
  legacy?(run: R): LegacyMeta
}

/** Notes kept in a results file beside a run (data, e.g. what happened around it), rendered after it. */
export interface WithNotes {
  notes?: string[]
}

function loadText(l: number[] | undefined): string {
  if (!l || l.length === 0) return '?'
  return l.length === 3 ? `${l.join(' / ')} (1/5/15 min)` : `${l.join(' / ')} (1 min)`
}

/** The line that says which run a figure comes from: commit, date, machine, load, rounds, command. */
export function runLine(
  run: Partial<RunMeta> & { generated_at?: string },
  fallbackCommand: string,
  legacy: LegacyMeta = {},
): string {
  const command = run.command ?? legacy.command ?? fallbackCommand
  const date = run.date ?? legacy.date ?? run.generated_at
  const load_before = run.load_before ?? legacy.load_before
  const load_after = run.load_after ?? legacy.load_after
  const rounds = run.rounds ?? legacy.rounds
  if (run.commit === undefined) {
    const known = [
      load_before || load_after
        ? `load average ${loadText(load_before)} before, ${loadText(load_after)} after`
        : 'load unknown',
      rounds === undefined ? 'rounds unknown' : `${rounds} ${rounds === 1 ? 'round' : 'rounds'} per figure`,
    ]
    return `\`${command}\`, ${date ?? 'date not recorded'}: recorded before runs kept their commit and load (commit unknown; ${known.join('; ')}).`
  }
  const m = run.machine
  const machine = m
    ? `${m.cpus} CPUs (${m.cpu_model})${m.mem_gib === undefined ? '' : `, ${m.mem_gib} GiB`}, Node ${m.node ?? '?'}`
    : 'machine not recorded'
  return [
    `\`${command}\`, commit ${run.commit}${run.dirty ? ' (with uncommitted changes)' : ''}, ${date ?? 'date not recorded'};`,
    `${machine}; load average ${loadText(load_before)} before, ${loadText(load_after)} after;`,
    `${rounds ?? '?'} ${rounds === 1 ? 'round' : 'rounds'} per figure.`,
  ].join(' ')
}

/** "p99" only where 100 samples support it; below that the same order statistic is the maximum. */
export function tailLabel(n: number): string {
  return n >= 100 ? 'p99' : 'max'
}
