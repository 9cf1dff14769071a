import { markdownTable } from '../lib/results-md.ts'
import type { Section } from './section.ts'

/** One nemesis run, as the issue's JSON shape names it (plus what the timeline measured). */
export interface FaultRecord {
  fault: string
  seed: number
  /** `off` or the k the nodes ran with. */
  output_commit: string
  acknowledged: number
  /** null when no single mailbox held the checker's marker (the verdict could not be made). */
  lost: number | null
  duplicated: number | null
  outage_ms: number
  false_failovers: number
  one_server_after_heal_ms: number | null
  detection_ms: number | null
  elections: number
  fault_ms: number
  params: Record<string, unknown>
  lost_acked_before_fault_ms?: number
  /** The lab run's node count and commit (absent in files written before `--merge`: the file's). */
  nodes?: number
  commit?: string
}

export interface ScaleFigures {
  idle_cpu_pct: number
  rss_mib: number
  control_bytes_per_s: number
  /** Both ways through the node's namespace (absent in runs before they were counted). */
  udp_packets_per_s?: number
  tcp_segments_per_s?: number
  failover_ms?: number | null
  /** The server alone, and the mean of the others (null with one node); absent in older runs. */
  server_cpu_pct?: number
  candidate_cpu_pct?: number | null
  /** Per-node means by part: the node's main thread, its other threads, its service and helpers. */
  cpu_main_thread_pct?: number
  cpu_other_threads_pct?: number
  cpu_service_pct?: number
}

export interface FaultsJson {
  commit: string
  date: string
  command: string
  nodes: number
  seed: number
  load_before: number[]
  load_after: number[]
  runs: FaultRecord[]
  /** `--merge`: the commands of the earlier lab runs whose rows this file keeps. */
  merged_from?: string[]
  scale: {
    nodes?: Record<string, ScaleFigures>
    commit?: string
    date?: string
    load_before?: number[]
    load_after?: number[]
    /** Every node's snapshot interval during the measurement (absent: 1000, the lab's default). */
    snapshot_interval_ms?: number
  }
}

function pct(values: number[], p: number): number | string {
  if (values.length === 0) return '-'
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!
}

const sum = (values: (number | null)[]) =>
  values.some((v) => v === null) ? 'n/a' : values.reduce<number>((a, v) => a + (v ?? 0), 0)

/** What the lab measures and how: the fixed text of its RESULTS.md section. */
export const FAULTS_METHOD = [
  'Real `sustain join` processes with the mail example and front doors, each in its own network namespace on a',
  "bridge. Acknowledged, lost and duplicated are the checker's (bench/faults/checker.py: smtplib and mailbox, no",
  'code of Sustain); outage = the longest time one client went without an acknowledgement; detection = the first',
  '`server_suspected` after the fault; a false failover is an election by a node whose view of the server no',
  'fault touched. Without output commit, mail acknowledged after the newest replicated snapshot may be lost',
  'when the server dies (kill-server).',
].join('\n')

/** The RESULTS.md section's body, from the JSON alone. */
export function renderFaults(json: FaultsJson): string {
  // One row per fault kind, node count and output commit (a merged file holds rows of several lab runs).
  const key = (r: FaultRecord) => `${r.fault}\u0000${r.nodes ?? json.nodes}\u0000${r.output_commit}`
  const kinds = [...new Set(json.runs.map(key))]
  const rows = kinds.map((kind) => {
    const [fault, nodes, output_commit] = kind.split('\u0000') as [string, string, string]
    const runs = json.runs.filter((r) => key(r) === kind)
    const heal = runs.map((r) => r.one_server_after_heal_ms)
    const commits = [...new Set(runs.map((r) => r.commit ?? json.commit))].join(' ')
    return [
      fault,
      nodes,
      output_commit,
      runs.length,
      sum(runs.map((r) => r.acknowledged)),
      sum(runs.map((r) => r.lost)),
      sum(runs.map((r) => r.duplicated)),
      pct(
        runs.map((r) => r.outage_ms),
        50,
      ),
      // A handful of runs per kind: the tail is the maximum, and is called so.
      Math.max(...runs.map((r) => r.outage_ms)),
      sum(runs.map((r) => r.false_failovers)),
      pct(
        runs.flatMap((r) => (r.detection_ms === null ? [] : [r.detection_ms])),
        50,
      ),
      heal.some((h) => h === null) ? 'never' : Math.max(...(heal as number[])),
      commits,
    ]
  })
  const table = markdownTable(
    [
      'fault',
      'nodes',
      'output commit',
      'runs',
      'acknowledged',
      'lost',
      'duplicated',
      'outage p50 ms',
      'outage max ms',
      'false failovers',
      'detection p50 ms',
      'one server after heal, max ms',
      'commit',
    ],
    rows,
  )
  const parts = [table]
  const scale = json.scale.nodes
  if (scale && Object.keys(scale).length > 0) {
    parts.push(
      '',
      'Idle nodes (`npm run faults -- --scale 1,5,10,20`): no client; CPU is CPU time (/proc ticks, which the ' +
        "machine's load does not inflate) of the node, its service and the helpers it started and reaped (probes), " +
        "split into the node's main thread, its other threads (control plane, GC, storage) and service with helpers; " +
        "bytes are both ways on the node's link (heartbeats, DHT, lanes); then the server SIGKILLed (not with 1 node). " +
        'The issue asks for at most 1 % of a core per idle node. ' +
        `Commit ${json.scale.commit}, ${json.scale.date?.slice(0, 10)}, snapshot interval ${json.scale.snapshot_interval_ms ?? 1000} ms, load ${json.scale.load_before?.join(' ')} before, ${json.scale.load_after?.join(' ')} after:`,
      '',
      markdownTable(
        [
          'nodes',
          'idle CPU % of a core per node',
          'server / others, %',
          'main thread / other threads / service and helpers, % per node',
          'RSS MiB per node',
          'control bytes/s per node',
          'UDP packets/s per node (hyperswarm)',
          'TCP segments/s per node (lanes)',
          'server SIGKILL to one server, ms',
        ],
        Object.entries(scale).map(([n, s]) => [
          n,
          s.idle_cpu_pct,
          s.server_cpu_pct === undefined ? '-' : `${s.server_cpu_pct} / ${s.candidate_cpu_pct ?? '-'}`,
          s.cpu_main_thread_pct === undefined
            ? '- (not split; probes not counted)'
            : `${s.cpu_main_thread_pct} / ${s.cpu_other_threads_pct} / ${s.cpu_service_pct}`,
          s.rss_mib,
          s.control_bytes_per_s,
          s.udp_packets_per_s ?? '-',
          s.tcp_segments_per_s ?? '-',
          n === '1' ? '- (no peer)' : (s.failover_ms ?? 'never'),
        ]),
      ),
    )
  }
  return `${parts.join('\n')}\n`
}

export const faultsSection: Section<FaultsJson> = {
  file: 'faults.json',
  heading: 'Fault lab',
  method: FAULTS_METHOD,
  render: (run) =>
    `${
      run.merged_from?.length
        ? `Rows of ${run.merged_from.length + 1} lab runs (\`--merge\`: a run replaces the rows of the kinds and node count it ran; each row names its commit), the newest seed ${run.seed}`
        : `${run.nodes} nodes, seed ${run.seed}`
    }.\n\n${renderFaults(run)}`,
  // The lab records commit, date, command and loads; its rounds are the runs of each fault kind.
  legacy: (run) => {
    const perKind = new Map<string, number>()
    for (const r of run.runs) perKind.set(r.fault, (perKind.get(r.fault) ?? 0) + 1)
    return { rounds: Math.min(...perKind.values()) }
  },
  summary: (run) => {
    const lost = run.runs.reduce((s, r) => s + (r.lost ?? 0), 0)
    const dup = run.runs.reduce((s, r) => s + (r.duplicated ?? 0), 0)
    return `${run.date}, commit ${run.commit}, load ${run.load_before?.[0] ?? '?'}: ${run.runs.length} runs, ${lost} lost, ${dup} duplicated`
  },
}
