import { markdownTable } from '../lib/results-md.ts'
import type { RunMeta } from '../lib/run-meta.ts'
import type { Section } from './section.ts'

/** Type0 replicas behind the front door (not built yet: no rows). */
export interface Type0Case {
  replicas: number
  requests_per_s: number
  p99_ms: number
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
      ? 'Type0 (replicas behind the front door): not built, no figures.'
      : markdownTable(
          ['replicas', 'requests/s', 'p99 ms'],
          run.type0.map((c) => [c.replicas, c.requests_per_s, c.p99_ms]),
        )
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
  return `${run.date ?? 'undated'}, commit ${run.commit ?? '?'}, load 1m ${run.load_before?.[0] ?? '?'}-${run.load_after?.[0] ?? '?'}: capacity ${run.capacity.chose_unloaded}/${run.capacity.runs}; ${rway.join('; ')}`
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
    "with the killed server's.",
  ].join('\n'),
  render,
  summary,
}
