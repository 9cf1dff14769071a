import { markdownTable } from '../lib/results-md.ts'
import type { RunMeta } from '../lib/run-meta.ts'
import { type Section, tailLabel } from './section.ts'

/** Type0 replicas behind the front door: `concurrency` clients for `duration_ms` through node 0's. */
export interface Type0Case {
  replicas: number
  requests_per_s: number
  /** Nearest-rank 99th percentile of `samples` request latencies (a maximum's worth below 100). */
  p99_ms: number
  /** Absent in runs before the front door spread among replicas (none had rows). */
  p50_ms?: number
  samples?: number
  failed?: number
  concurrency?: number
  duration_ms?: number
  /** Answers per node (node 0 first: the client's front door). */
  by_replica?: number[]
}

export interface RwayCase {
  nodes: number
  r: number
  /** Mean growth of a share holder's overlay store for the one snapshot (bytes on disk). */
  bytes_per_node: number
  bytes_per_node_max: number
  /** The service's state directory on the server when the snapshot was taken. */
  image_bytes: number
  /** SIGKILL of the server and r - 1 holders to the successor's service_answering. */
  restore_ms: number
  /** The successor's mailbox is byte-identical to the killed server's. */
  verified: boolean
  killed: number
}

export interface TypesRun {
  quick: boolean
  type0: Type0Case[]
  capacity: { runs: number; chose_unloaded: number; loaded_by: string }
  rway: RwayCase[]
}

const mib = (bytes: number) => (bytes / 2 ** 20).toFixed(2)

function render(run: TypesRun): string {
  const capacity = `Capacity election: the stronger node (${run.capacity.loaded_by}) was elected in ${run.capacity.chose_unloaded} of ${run.capacity.runs} runs.`
  const rows = run.rway.map((c) => [
    c.nodes,
    c.r,
    mib(c.image_bytes),
    mib(c.bytes_per_node),
    mib(c.bytes_per_node_max),
    mib((c.image_bytes * c.r) / (c.nodes - 1)),
    c.killed,
    c.restore_ms,
    c.verified ? 'yes' : '**NO**',
  ])
  const type0 =
    run.type0.length === 0
      ? 'Type0 (replicas behind the front door): no figures in this run.'
      : [
          `Type0: 3 nodes, examples/replica-http with \`replicas\` 1-3; ${run.type0[0]?.concurrency ?? '?'} clients on this machine, each a new connection per GET, through node 0's front door.`,
          '',
          markdownTable(
            [
              'replicas',
              'requests/s',
              'median ms',
              'latency tail ms',
              'requests',
              'failed',
              'answers per node',
            ],
            run.type0.map((c) => [
              c.replicas,
              c.requests_per_s,
              c.p50_ms ?? '-',
              `${tailLabel(c.samples ?? 0)} ${c.p99_ms}`,
              `${c.samples ?? '?'} samples`,
              c.failed ?? '-',
              c.by_replica?.join(' / ') ?? '-',
            ]),
          ),
          '',
          'Nodes, services and clients share 2 cores: more replicas add no CPU here, so requests/s shows the',
          "front door's spreading and forwarding cost, not the scaling of replicas on separate PCs.",
        ].join('\n')
  return [
    capacity,
    '',
    markdownTable(
      [
        'nodes',
        'r',
        'image MiB',
        'MiB per holder (mean)',
        'MiB per holder (max)',
        'image x r / (nodes - 1) MiB',
        'killed',
        'restore ms',
        'byte-identical',
      ],
      rows,
    ),
    '',
    'One snapshot and one failover per row: each restore time is a single sample.',
    '',
    type0,
  ].join('\n')
}

function summary(run: TypesRun & Partial<RunMeta>): string {
  const rway = run.rway.map(
    (c) => `${c.nodes} nodes r=${c.r}: ${mib(c.bytes_per_node)} MiB/holder, restore ${c.restore_ms} ms`,
  )
  const type0 = run.type0.map((c) => `${c.replicas} replicas ${c.requests_per_s} req/s`)
  return `${run.date ?? 'undated'}, commit ${run.commit ?? '?'}, load 1m ${run.load_before?.[0] ?? '?'}-${run.load_after?.[0] ?? '?'}: capacity ${run.capacity.chose_unloaded}/${run.capacity.runs}; ${rway.join('; ')}${type0.length > 0 ? `; type0 ${type0.join(', ')}` : ''}`
}

export const typesSection: Section<TypesRun> = {
  file: 'types.json',
  heading: 'Service types, capacity election, r-way replication',
  method: [
    'Real node processes and the mail service on a loopback testnet (bench/types.ts). Capacity: 2 nodes of',
    'equal priority, strategy `capacity`, one declaring 8 times the capacity of the other (alternating);',
    'both share this machine, so its load figure cannot tell them apart and the declared weight is the',
    'difference. r-way: N nodes with `snapshots.replication_factor` r, incompressible mail, one snapshot;',
    "MiB per holder is how much each share holder's overlay store grew (on disk, so with the store's own",
    'overhead), against the state image; then the server and r - 1 holders are SIGKILLed together and',
    "the time to the successor's `service_answering` is taken, and its mailbox compared byte for byte",
    "with the killed server's. Type0: 3 nodes run the stateless HTTP example with `replicas` 1, 2, 3;",
    "clients GET through node 0's front door (least connections among the replicas) for a fixed time.",
  ].join('\n'),
  render,
  summary,
}
