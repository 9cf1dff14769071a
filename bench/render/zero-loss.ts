import { markdownTable } from '../lib/results-md.ts'
import { type Section, tailLabel } from './section.ts'

export interface ZeroLossMode {
  mails_per_s: number
  latency_p50_ms: number
  /** By rank over every transaction of the steady phases (hundreds or more). */
  latency_p99_ms: number
  snapshots_per_s: number
  bytes_replicated_per_mail: number
  lost_acknowledged: number
  duplicated: number
  acknowledged: number
  kills: number
  kills_mid_snapshot: number
  /** Mean 1-minute load average at the start of this mode's runs (runs since modes took turns). */
  load_1m_mean?: number
  /** Runs that did not finish (their error is in the run's `failures`); not in any figure above. */
  failed_runs?: number
}

export interface ZeroLossRun {
  quick: boolean
  ballast_bytes: number
  steady_ms: number
  modes: Record<string, ZeroLossMode>
  /** 'alternating': rounds of one run per mode, the order reversed every other round. Absent: mode after mode. */
  order?: 'alternating'
  failures?: { mode: string; round: number; seed: number; error: string; load_1m_before: number }[]
}

/** The first version kept its load as strings in a field of its own. */
interface LegacyZeroLossRun extends ZeroLossRun {
  load_1m?: { before: string; after: string }
}

function verdicts(run: ZeroLossRun): string[] {
  const off = run.modes['off']
  const k1 = run.modes['k1']
  const out = ['Targets:']
  const committed = Object.entries(run.modes).filter(([name]) => name !== 'off')
  const lost = committed.reduce((s, [, m]) => s + m.lost_acknowledged, 0)
  out.push(`- 0 lost acknowledged with output commit on: ${lost} lost: ${lost === 0 ? 'met' : '**NOT met**'}`)
  if (off && k1) {
    const share = k1.mails_per_s / off.mails_per_s
    out.push(
      `- throughput with k = 1 at least 70 % of off: ${Math.round(share * 100)} %: ${share >= 0.7 ? 'met' : '**NOT met**'}`,
    )
    const added = k1.latency_p99_ms - off.latency_p99_ms
    const tail = tailLabel(Math.min(k1.acknowledged, off.acknowledged))
    out.push(
      `- added latency (target p99 <= 100 ms on loopback): ${tail} ${k1.latency_p99_ms} ms against ${off.latency_p99_ms} (+${added} ms): ${added <= 100 ? 'met' : '**NOT met**'}`,
    )
  }
  return out
}

function render(run: LegacyZeroLossRun): string {
  const rows = Object.entries(run.modes).map(([name, m]) => [
    name,
    m.mails_per_s,
    m.latency_p50_ms,
    `${m.latency_p99_ms} (${tailLabel(m.acknowledged)} of ${m.acknowledged} transactions)`,
    m.snapshots_per_s,
    m.bytes_replicated_per_mail,
    `${m.lost_acknowledged} of ${m.acknowledged}`,
    m.duplicated,
    `${m.kills} (${m.kills_mid_snapshot} mid-snapshot)${m.failed_runs ? `; ${m.failed_runs} run(s) failed` : ''}`,
    m.load_1m_mean ?? '-',
  ])
  return [
    `examples/mail with ${run.ballast_bytes / 1024 / 1024} MiB of ballast in its state directory; rates and latencies over ${run.steady_ms / 1000} s of steady load per run; ${run.order === 'alternating' ? 'the modes took turns (one run of each per round, the order reversed every other round)' : 'mode after mode (all runs of one mode, then the next)'}.`,
    '',
    markdownTable(
      [
        'output_commit',
        'mails/s',
        'latency p50 ms',
        'latency tail ms',
        'snapshots/s',
        'bytes replicated per mail',
        'lost acknowledged',
        'duplicated',
        'kills',
        'load 1m (mean at run starts)',
      ],
      rows,
    ),
    '',
    ...verdicts(run),
    ...(run.failures?.length
      ? [
          '',
          'Runs that did not finish (not in the figures):',
          ...run.failures.map(
            (f) =>
              `- ${f.mode}, round ${f.round}, seed ${f.seed}, load ${f.load_1m_before.toFixed(1)}: ${f.error}`,
          ),
        ]
      : []),
  ].join('\n')
}

export const zeroLossSection: Section<ZeroLossRun> = {
  file: 'zero-loss.json',
  heading: 'Zero-loss mode (output commit)',
  method: [
    'One client sends mail after mail (one transaction at a time) through the front door of the lowest-priority',
    'node; k+2 nodes (3 for off). After the steady phase the server is SIGKILLed at a random moment (a fresh',
    'federation per kill) and every mail the client saw acknowledged (250) is looked for in the new server',
    "mailbox by the client itself (test/e2e/zero-loss-run.ts), never by asking Sustain. Latency is the client's",
    'whole SMTP transaction over all steady transactions of a mode.',
  ].join('\n'),
  render,
  summary: (run: LegacyZeroLossRun & { date?: string; commit?: string; load_before?: number[] }) => {
    const k1 = run.modes['k1']
    const off = run.modes['off']
    return `${run.date ?? 'undated'}, commit ${run.commit ?? '?'}, load ${run.load_before?.[0] ?? run.load_1m?.before ?? '?'}: off ${off?.mails_per_s} mails/s, k1 ${k1?.mails_per_s} mails/s, ${tailLabel(k1?.acknowledged ?? 0)} ${k1?.latency_p99_ms} ms, lost with commit ${Object.entries(
      run.modes,
    )
      .filter(([n]) => n !== 'off')
      .reduce((s, [, m]) => s + m.lost_acknowledged, 0)}`
  },
  legacy: (run: LegacyZeroLossRun) => ({
    command: `npm run bench:zero-loss${run.quick ? ' -- --quick' : ''}`,
    rounds: run.modes['k1']?.kills,
    load_before: run.load_1m ? [Number(run.load_1m.before)] : undefined,
    load_after: run.load_1m ? [Number(run.load_1m.after)] : undefined,
  }),
}
