import { markdownTable } from '../lib/results-md.ts'
import { type Spread, showSpread } from '../lib/stats.ts'
import type { Section } from './section.ts'

export interface MergePoint {
  spool_mib: number
  /** Share of the loser's messages after the fork that the winner already holds. */
  overlap: number
  spool_bytes: number
  merge_s: Spread
  archive_s: Spread
  merge_only_s: Spread
  naive_cat_s: Spread
  archive_bytes: number
  added: number
  duplicates: number
}

export interface MergeRun {
  quick: boolean
  mailboxes: number
  common_share: number
  points: MergePoint[]
  target: { mb_per_s: number; linear: boolean }
}

/** A point as the first version of the bench wrote it: one sample, no overlap. */
type LegacyPoint = Omit<MergePoint, 'merge_s' | 'archive_s' | 'merge_only_s' | 'naive_cat_s' | 'overlap'> & {
  merge_s: number
  archive_s: number
  merge_only_s: number
  naive_cat_s: number
}

function one(x: number): Spread {
  return { n: 1, median: x, min: x, max: x, p99: null }
}

function points(run: MergeRun): MergePoint[] {
  return run.points.map((p) => {
    if (typeof p.merge_s !== 'number') return p
    const l = p as unknown as LegacyPoint
    return {
      ...l,
      overlap: 0,
      merge_s: one(l.merge_s),
      archive_s: one(l.archive_s),
      merge_only_s: one(l.merge_only_s),
      naive_cat_s: one(l.naive_cat_s),
    }
  })
}

const rate = (bytes: number, s: Spread) => Math.round((bytes / 1e6 / s.median) * 10) / 10

function headline(run: MergeRun): { mb_per_s: number; size: number; linearity: number | null } {
  const plain = points(run).filter((p) => p.overlap === 0)
  const largest = plain.at(-1)!
  const reference = plain.find((p) => p.spool_mib === 100)
  const per_mib = (p: MergePoint) => p.merge_s.median / p.spool_mib
  const linearity =
    reference && reference !== largest
      ? Math.round((per_mib(largest) / per_mib(reference)) * 100) / 100
      : null
  return { mb_per_s: rate(largest.spool_bytes, largest.merge_s), size: largest.spool_mib, linearity }
}

function render(run: MergeRun): string {
  const all = points(run)
  const table = markdownTable(
    [
      'spool MiB per side',
      'archive overlap with winner',
      'merge s (archive + merge)',
      'archive s',
      'merge s',
      'MB/s',
      'added',
      'duplicates found',
      'peer: cat s',
    ],
    all.map((p) => [
      p.spool_mib,
      `${p.overlap * 100} %`,
      showSpread(p.merge_s),
      showSpread(p.archive_s),
      showSpread(p.merge_only_s),
      rate(p.spool_bytes, p.merge_s),
      p.added,
      p.duplicates,
      showSpread(p.naive_cat_s),
    ]),
  )
  const h = headline(run)
  const lines = [
    table,
    '',
    `Rate at ${h.size} MiB: ${h.mb_per_s} MB/s (target >= ${run.target.mb_per_s} MB/s): ${h.mb_per_s >= run.target.mb_per_s ? 'met' : '**NOT met**'}.`,
  ]
  if (h.linearity !== null)
    lines.push(
      `Linearity: seconds per MiB at ${h.size} MiB over those at 100 MiB = ${h.linearity} (1.0 = linear).`,
    )
  if (all.every((p) => p.overlap === 0))
    lines.push(
      'This run predates the overlap cases: its archives held only new mail, so de-duplication was not exercised.',
    )
  return lines.join('\n')
}

export const mergeSection: Section<MergeRun> = {
  file: 'merge.json',
  heading: 'Merge',
  method: [
    'Built-in mbox helper. Each side holds the spool size in 20 mailboxes: 80 % common history, 20 % received after',
    "the fork; of the loser's post-fork mail, the overlap share was also delivered to the winner, so the merge must",
    'find it as a duplicate (counts checked against how the bench built the spools). Timed: `archive` on the loser',
    '+ `merge` into the winner (dedupe by Message-ID, date order, each mailbox rewritten atomically with fsync), on',
    'a fresh copy of the winner each round. Peer: `cat` of both spools + `sync` per mailbox (no dedupe, no order).',
    'Merge and peer take turns to go first.',
  ].join('\n'),
  render,
  summary: (
    run: MergeRun & { date?: string; generated_at?: string; commit?: string; load_before?: number[] },
  ) => {
    const h = headline(run)
    return `${run.date ?? run.generated_at ?? 'undated'}, commit ${run.commit ?? '?'}, load ${run.load_before?.[0] ?? '?'}: ${h.mb_per_s} MB/s at ${h.size} MiB`
  },
}
