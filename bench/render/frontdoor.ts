import { markdownTable } from '../lib/results-md.ts'
import { type LegacyMeta, type Section, tailLabel } from './section.ts'

const MiB = 1024 * 1024

export interface FrontdoorRun {
  quick: boolean
  /** Per path, `transactions` samples each: p99 is what the count supports only from 100 on. */
  latency_ms: {
    transactions: number
    direct_p50: number | null
    direct_p99: number | null
    via_server_p50: number | null
    via_server_p99: number | null
    via_candidate_p50: number | null
    via_candidate_p99: number | null
    /**
     * Added latency taken paired (runs from before this field have none): the median over rounds of each
     * round's via-path transaction minus the same round's direct one. The direct time spreads widely
     * (the service is paused for each snapshot), so a difference of separately taken medians is noisy.
     */
    added_method?: string
    via_server_added_p50?: number | null
    via_candidate_added_p50?: number | null
  }
  /**
   * The front door's code alone (bench process, no node's other work, no process wake-ups): a fresh
   * connection to its first echo and one round trip on an open one, each paired per round against direct.
   */
  echo_added_ms?: {
    sessions: number
    pings: number
    direct_first_p50: number | null
    direct_rtt_p50: number | null
    via_server_first_added_p50: number | null
    via_server_rtt_added_p50: number | null
    via_candidate_first_added_p50: number | null
    via_candidate_rtt_added_p50: number | null
  }
  /** One stream each. */
  throughput_mb_per_s: { bytes: number; direct: number; via_candidate: number }
  outage: {
    runs: number
    p50_ms: number | null
    /** The longest outage (the first version called it p99: over fewer than 100 runs, the same figure). */
    max_ms?: number | null
    p99_ms?: number | null
    refused: number
    failed_transactions: number
    samples_ms: number[]
    /**
     * Median ms after the kill at which each stage was first logged (bench/frontdoor.ts OutageStages):
     * where the outage went. Runs from before this field have none.
     */
    stages_p50_ms?: Record<string, number | null>
  }
  keepalived_ms: {
    default_p50: number | null
    fastest_p50: number | null
    version?: string
    runs?: number
    /** Why a figure is missing (e.g. no steady state at 10 ms adverts on a loaded machine). */
    default_error?: string
    fastest_error?: string
  }
  bytes_per_idle_connection: number
}

/** The first version kept its date and 1-minute loads (as strings) in fields of its own. */
interface LegacyFrontdoorRun extends FrontdoorRun {
  date?: string
  load_1m?: { before: string; after: string }
}

function render(run: FrontdoorRun): string {
  const l = run.latency_ms
  const n = l.transactions
  const tail = tailLabel(n)
  const o = run.outage
  const k = run.keepalived_ms
  const keepalived =
    k.default_p50 === null
      ? `keepalived not measured${k.default_error ? ` (${k.default_error})` : ''}`
      : `keepalived ${k.version ?? ''} VIP takeover median ${k.default_p50} (advert_int 1${k.runs ? `, ${k.runs} runs` : ''})`
  const table = markdownTable(
    ['measure', 'direct / peer', "through the server's front door", "through a candidate's front door"],
    [
      [`SMTP transaction median ms (${n} per path)`, l.direct_p50, l.via_server_p50, l.via_candidate_p50],
      [`SMTP transaction ${tail} ms (${n} per path)`, l.direct_p99, l.via_server_p99, l.via_candidate_p99],
      ...(l.via_server_added_p50 !== undefined
        ? [
            [
              `added per SMTP transaction, paired: median of per-round differences, ms (${n} rounds)`,
              '-',
              l.via_server_added_p50,
              l.via_candidate_added_p50 ?? '-',
            ],
          ]
        : []),
      ...(run.echo_added_ms
        ? [
            [
              `front door code alone (one process, echo): added to a fresh connection's first echo, ms (${run.echo_added_ms.sessions} rounds)`,
              run.echo_added_ms.direct_first_p50,
              run.echo_added_ms.via_server_first_added_p50,
              run.echo_added_ms.via_candidate_first_added_p50,
            ],
            [
              `front door code alone (one process, echo): added per round trip, ms (${run.echo_added_ms.pings} pings)`,
              run.echo_added_ms.direct_rtt_p50,
              run.echo_added_ms.via_server_rtt_added_p50,
              run.echo_added_ms.via_candidate_rtt_added_p50,
            ],
          ]
        : []),
      [
        `one TCP stream of ${run.throughput_mb_per_s.bytes / MiB} MiB, MB/s (one stream each)`,
        run.throughput_mb_per_s.direct,
        '-',
        run.throughput_mb_per_s.via_candidate,
      ],
      [
        `client outage after SIGKILL, ${o.runs} runs: median / ${tailLabel(o.runs)} ms`,
        keepalived,
        '-',
        `${o.p50_ms} / ${o.max_ms ?? o.p99_ms} (refused ${o.refused})`,
      ],
      ['bytes per idle held connection', '-', '-', run.bytes_per_idle_connection],
    ],
  )
  const fastest =
    k.fastest_p50 === null
      ? `keepalived at its fastest interval (advert_int 0.01 s): not measured${k.fastest_error ? ` (${k.fastest_error})` : ''}.`
      : `keepalived at its fastest interval (advert_int 0.01 s, VRRPv3): VIP takeover median ${k.fastest_p50} ms.`
  const stages = o.stages_p50_ms
    ? `\n\nWhere the outage went (median ms after the SIGKILL, over the ${o.runs} runs): ${Object.entries(
        o.stages_p50_ms,
      )
        .map(([stage, ms]) => `${stage.replaceAll('_', ' ')} ${ms ?? '-'}`)
        .join(', ')}.`
    : ''
  return `${table}\n\n${fastest}${stages}`
}

function summary(run: LegacyFrontdoorRun & { commit?: string; load_before?: number[] }): string {
  const load = run.load_before?.[0] ?? run.load_1m?.before ?? '?'
  return `${run.date ?? 'undated'}, commit ${run.commit ?? '?'}, load 1m ${load}${run.quick ? ', --quick' : ''}: transaction through a candidate median ${run.latency_ms.via_candidate_p50} ms (direct ${run.latency_ms.direct_p50}), outage median ${run.outage.p50_ms} ms over ${run.outage.runs} runs`
}

export const frontdoorSection: Section<FrontdoorRun> = {
  file: 'frontdoor.json',
  heading: 'Front door',
  method: [
    "3 node processes serving examples/mail; SMTP transactions to the service directly, through the server's",
    "front door and through a candidate's, the paths taking turns, each transaction on a fresh connection.",
    "Added latency: the median of per-round differences (each round's via-path time minus that round's direct",
    'time), not the difference of the medians: the direct time spreads widely (the service is paused for each',
    'snapshot, every 500 ms here). Echo rows: the front door code alone, client, doors and service in the bench',
    'process (no process wake-ups, no node work), paired per round against direct.',
    'Outage: the longest time without an acknowledgement seen by a client that keeps sending mail through one',
    "candidate's front door while the server is SIGKILLed (a fresh federation per run). Throughput and idle",
    'connections: two members in the bench process on a local testnet (one thread carries both relays and the',
    'client; idle bytes count both ends of each connection: an upper bound). Peer: keepalived moving a VIP.',
  ].join('\n'),
  render,
  summary,
  legacy: (run: LegacyFrontdoorRun): LegacyMeta => ({
    command: `npm run bench:frontdoor${run.quick ? ' -- --quick' : ''}`,
    rounds: 1,
    load_before: run.load_1m && [Number(run.load_1m.before)],
    load_after: run.load_1m && [Number(run.load_1m.after)],
  }),
}
