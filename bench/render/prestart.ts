import { markdownTable } from '../lib/results-md.ts'
import type { Spread } from '../lib/stats.ts'
import { showSpread } from '../lib/stats.ts'
import type { Section } from './section.ts'

export interface PrestartMode {
  runs: number
  /** Runs whose new server started the copy it held (every prestart run should). */
  prestarted_runs: number
  start_to_listening_ms: Spread
  kill_to_listening_ms: Spread
  kill_to_answering_ms: Spread
  samples: object[]
}

export interface PrestartRun {
  prestart: PrestartMode
  plain: PrestartMode
}

function render(run: PrestartRun): string {
  const row = (name: string, m: PrestartMode) => [
    name,
    `${m.runs} (${m.prestarted_runs} prestarted)`,
    showSpread(m.start_to_listening_ms),
    showSpread(m.kill_to_listening_ms),
    showSpread(m.kill_to_answering_ms),
  ]
  return markdownTable(
    ['mode', 'runs', 'start to listening ms', 'SIGKILL to listening ms', 'SIGKILL to answering (probe) ms'],
    [row('prestart: true', run.prestart), row('prestart: false', run.plain)],
  )
}

export const prestartSection: Section<PrestartRun> = {
  file: 'prestart.json',
  heading: 'Prestart: the service start in a failover',
  method:
    "bench/prestart.ts. The example mail service with `prestart: true` (the top candidate keeps the command loaded, waiting for its start line) against `prestart: false`, same service code, helper and manifest otherwise; 3 real node processes on a local testnet, snapshots every second, a fresh federation per mode and round, modes in rotating order. The server's process group is SIGKILLed once it answers (and, with prestart, once the top candidate holds its copy); figures come from the new server's log: `service_started` to the service's own \"listening\" line (the process start), and the SIGKILL to that line and to `service_answering` (the first probe that passed; clients are forwarded from the listening line on). Median (min-max).",
  render,
  summary: (run) =>
    `start to listening ms: prestart ${showSpread(run.prestart.start_to_listening_ms)}, plain ${showSpread(run.plain.start_to_listening_ms)}`,
}
