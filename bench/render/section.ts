import type { RunMeta } from '../lib/run-meta.ts'

/** One `## ` section of bench/RESULTS.md, rendered from one results file and nothing else. */
export interface Section<R extends object = any> {
  /** File under bench/results/. */
  file: string
  /** The section's heading, without `## `. */
  heading: string
  /** What the suite measures and how (method, peers, what differs between them): fixed text of the suite. */
  method: string
  /** The newest run in full: tables and verdicts against targets. */
  render(run: R & Partial<RunMeta>): string
  /** One line for each earlier run kept in the file (its headline figures), or undefined to list none. */
  summary?(run: R & Partial<RunMeta>): string
}

/** The line that says which run a figure comes from: commit, date, machine, load, rounds, command. */
export function runLine(run: Partial<RunMeta> & { generated_at?: string }, fallbackCommand: string): string {
  if (run.commit === undefined) {
    const when = run.generated_at ?? 'date not recorded'
    return `\`${fallbackCommand}\`, ${when}: recorded before runs kept their commit and load (commit, load and rounds unknown).`
  }
  const m = run.machine
  const machine = m
    ? `${m.cpus} CPUs (${m.cpu_model}), ${m.mem_gib} GiB, Node ${m.node}`
    : 'machine not recorded'
  const load = (l: number[] | undefined) => (l ? l.join(' / ') : '?')
  return [
    `\`${run.command ?? fallbackCommand}\`, commit ${run.commit}${run.dirty ? ' (with uncommitted changes)' : ''}, ${run.date};`,
    `${machine}; load average (1/5/15 min) ${load(run.load_before)} before, ${load(run.load_after)} after;`,
    `${run.rounds ?? '?'} rounds per figure.`,
  ].join(' ')
}
