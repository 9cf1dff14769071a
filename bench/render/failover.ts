import type { LeaveUnderLoad } from '../leave-under-load.ts'
import { markdownTable } from '../lib/results-md.ts'
import { type Spread, showSpread, spread } from '../lib/stats.ts'
import type { KeepalivedResult } from '../peers/keepalived.ts'
import { type LegacyMeta, type Section, tailLabel } from './section.ts'

/** One fault: milliseconds from the signal to each stage (null where the stage does not apply). */
export interface FaultSample {
  detect_ms: number | null
  elect_ms: number | null
  restore_ms: number | null
  answer_ms: number
}

export type Fault = 'sigkill' | 'sigstop' | 'service_crash'

export interface FailoverRun {
  nodes: number
  quick: boolean
  /** Every run of every fault; the tables are computed from these. */
  samples: Record<Fault, FaultSample[]>
  leave_under_load?: LeaveUnderLoad
  /** Snapshot pauses of the mail state directory over all nodes during the run. */
  snapshot_pause_ms?: Spread
  peers: {
    keepalived: KeepalivedResult
    keepalived_same_budget?: KeepalivedResult
    keepalived_fastest?: KeepalivedResult
  }
}

/** What the first version wrote beside the samples: a leave check with mail sent before it, a pause p99. */
interface LegacyFailoverRun extends FailoverRun {
  leave?: { acknowledged: number; lost_acknowledged: number }
  snapshot_pause_p50_ms?: number
  snapshot_pause_p99_ms?: number
  snapshots?: number
}

export interface LeaveRun {
  nodes: number
  leave_under_load: LeaveUnderLoad
}

interface LegacyLeaveRun extends LeaveRun {
  machine?: { load_before?: string; load_after?: string }
}

const FAULTS: [Fault, string][] = [
  ['sigkill', 'server SIGKILL'],
  ['sigstop', 'server SIGSTOP'],
  ['service_crash', 'service crash'],
]

function stage(samples: FaultSample[], key: keyof FaultSample): Spread | null {
  const values = samples.map((s) => s[key]).filter((v): v is number => v !== null)
  return values.length > 0 ? spread(values, 1) : null
}

/** The leaves under load in a sentence (both sections). */
export function leaveSentence(l: LeaveUnderLoad): string {
  const gaps = spread(
    l.leaves.map((x) => x.gap_ms),
    0,
  )
  return (
    `Leave under load (${l.runs} leaves of the server in a row, each leaver rejoining, a client mailing every 50 ms ` +
    `to any node's address): outage median ${gaps.median} ms (${gaps.min}-${gaps.max}) over ${gaps.n} leaves; ` +
    `${l.acknowledged} of ${l.sent_during_leave} mails acknowledged, ${l.lost_acknowledged} of them lost ` +
    `(must be 0: ${l.lost_acknowledged === 0 ? 'met' : '**NOT met**'}); two servers at once ${l.two_servers}; ` +
    `leave exited non-zero ${l.leave_exit_nonzero}.`
  )
}

function leaveLine(run: LegacyFailoverRun): string {
  if (run.leave_under_load) return leaveSentence(run.leave_under_load)
  if (run.leave)
    return (
      `Leave: ${run.leave.acknowledged} mails acknowledged, ${run.leave.lost_acknowledged} lost. This run predates ` +
      'mail flowing during the leave: its mails were sent before the leave and nothing flowed during it ' +
      '(the leaves under load are in their own section).'
    )
  return 'Leave: not measured in this run.'
}

function pauseLine(run: LegacyFailoverRun): string {
  if (run.snapshot_pause_ms) {
    const p = run.snapshot_pause_ms
    const tail = p.p99 === null ? `max ${p.max}` : `p99 ${p.p99}, max ${p.max}`
    return `Snapshot pause (mail state dir, ${p.n} snapshots): median ${p.median} ms, ${tail} ms.`
  }
  if (run.snapshot_pause_p50_ms !== undefined && run.snapshots !== undefined)
    return `Snapshot pause (mail state dir, ${run.snapshots} snapshots): p50 ${run.snapshot_pause_p50_ms} ms, ${tailLabel(run.snapshots)} ${run.snapshot_pause_p99_ms} ms.`
  return ''
}

function renderFailover(run: LegacyFailoverRun): string {
  const ka = run.peers.keepalived
  const rows = FAULTS.map(([key, label]) => {
    const s = run.samples[key]
    return [
      label,
      s.length,
      showSpread(stage(s, 'detect_ms')),
      showSpread(stage(s, 'elect_ms')),
      showSpread(stage(s, 'restore_ms')),
      showSpread(stage(s, 'answer_ms')),
    ]
  })
  for (const [peer, what] of [
    [ka, 'default timing'],
    [run.peers.keepalived_same_budget, "Sustain's heartbeat interval"],
    [run.peers.keepalived_fastest, 'its fastest interval'],
  ] as const) {
    if (!peer) continue
    const falses = peer.false_takeovers ? `, ${peer.false_takeovers} false takeovers` : ''
    rows.push([
      `keepalived ${peer.version} master SIGKILL, ${what} (advert_int ${peer.advert_int_s ?? 1} s${falses})`,
      peer.samples_ms.length,
      '-',
      '-',
      '-',
      showSpread(spread(peer.samples_ms, 1)),
    ])
  }
  const table = markdownTable(
    ['fault', 'runs', 'detect ms', 'elected ms', 'restored ms', 'answer ms (keepalived: VIP takeover)'],
    rows,
  )
  return [table, '', [leaveLine(run), pauseLine(run)].filter(Boolean).join(' ')].join('\n')
}

function legacyLoad(text: string | undefined): number[] | undefined {
  return text?.split(/\s+/).map(Number)
}

export const failoverSection: Section<FailoverRun> = {
  file: 'failover.json',
  heading: 'Failover',
  method: [
    'A federation of 5 node processes serving examples/mail on loopback, on the shared cores. Per round one',
    'server SIGKILL, one server SIGSTOP (SIGCONT after the takeover) and one crash of the service process.',
    'Times from the signal to each stage: detect (first `server_suspected` on another node), elected, restored,',
    'answer (the first SMTP 220 banner from the new server, probed every 25 ms). Figures are medians (min-max)',
    'over the runs. Peer in the same run: keepalived in two network namespaces joined by a veth pair, at its',
    "default advert interval (1 s), at Sustain's heartbeat interval (0.2 s: the same detection budget) and at",
    'its fastest (0.01 s, VRRPv3); its figure is the VIP takeover alone (no service restore), so it is a lower',
    'bound on what its clients would wait. The HA management systems of the original papers restored function',
    'in 4 to 9 s (published, not measured here).',
  ].join('\n'),
  render: renderFailover,
  summary: (run: LegacyFailoverRun & { date?: string; commit?: string; load_before?: number[] }) => {
    const answer = stage(run.samples.sigkill, 'answer_ms')
    return `${run.date ?? 'undated'}, commit ${run.commit ?? '?'}, load 1m ${run.load_before?.[0] ?? '?'}: server SIGKILL to answer ${showSpread(answer)} ms over ${run.samples.sigkill.length} runs; ${run.leave_under_load ? `leave under load: ${run.leave_under_load.lost_acknowledged} of ${run.leave_under_load.acknowledged} acknowledged lost` : 'no leave under load'}`
  },
  legacy: (run: FailoverRun): LegacyMeta => ({
    command: `npm run bench:failover${run.quick ? ' -- --quick' : ''}`,
    rounds: run.samples.sigkill.length,
  }),
}

export const leaveSection: Section<LeaveRun> = {
  file: 'failover-leave.json',
  heading: 'Leave under load',
  command: 'npm run bench:failover -- --only leave',
  method: [
    'A federation of 5 node processes serving examples/mail on loopback. `sustain leave` of the server, again',
    "and again (each leaver rejoins), while a client that knows only the nodes' addresses mails every 50 ms.",
    "Outage = the client's longest time without an acknowledgement from the leave request to the end of the",
    "hand-over; lost = acknowledged mails missing from the last server's mailbox (its Subject lines read from",
    'the mbox file by the bench, not by the code under test); two servers = pairs of nodes whose server',
    'intervals, from their own logs, overlapped.',
  ].join('\n'),
  render: (run: LeaveRun) =>
    `${leaveSentence(run.leave_under_load)}\n\nPer leave, outage ms: ${run.leave_under_load.leaves.map((l) => l.gap_ms).join(', ')}.`,
  summary: (run: LeaveRun & { date?: string; commit?: string; load_before?: number[] }) => {
    const l = run.leave_under_load
    return `${run.date ?? 'undated'}, commit ${run.commit ?? '?'}, load 1m ${run.load_before?.[0] ?? '?'}: ${l.runs} leaves, outage max ${Math.max(...l.leaves.map((x) => x.gap_ms))} ms, ${l.lost_acknowledged} of ${l.acknowledged} acknowledged lost`
  },
  legacy: (run: LegacyLeaveRun): LegacyMeta => ({
    command: `npm run bench:failover -- --only leave --leaves ${run.leave_under_load.runs}`,
    rounds: run.leave_under_load.runs,
    load_before: legacyLoad(run.machine?.load_before),
    load_after: legacyLoad(run.machine?.load_after),
  }),
}
