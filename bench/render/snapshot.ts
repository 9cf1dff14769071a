import { markdownTable } from '../lib/results-md.ts'
import { type Spread, showSpread } from '../lib/stats.ts'
import type { Section } from './section.ts'

export interface SustainResult {
  /** Including the worker pool's start-up: what a user waits for when nothing is warm. */
  encode_s: Spread
  /** The pool already running, as in a node that has taken a snapshot before. */
  encode_warm_s: Spread
  restore_s: Spread
  restore_warm_s: Spread
  delta_bytes: number
  peak_rss_mib: number
  verified: boolean
}

export interface NativeResult {
  encode_s: Spread
  decode_s: Spread
  delta_bytes: number
  peak_rss_mib: number | null
  verified: boolean
}

export interface SnapshotCaseResult {
  name: string
  image_mib: number
  changed_pct: number
  kind: string
  load_1m: number[]
  sustain: SustainResult
  xdelta3: NativeResult | null
  zstd: NativeResult | null
}

export interface SnapshotRun {
  quick: boolean
  threads: number
  cases: SnapshotCaseResult[]
}

const MB = 1024 * 1024

/** A case as an earlier version of the bench wrote it: one sample, encode without the pool's start. */
interface LegacyCase {
  name: string
  image_mib: number
  changed_pct: number
  load_avg_1m?: number[]
  sustain: {
    encode_s: number
    restore_s: number
    delta_bytes: number
    peak_rss_mib: number
    verified: boolean
    pool_start_s: number
  }
  xdelta3: {
    encode_s: number
    decode_s: number
    delta_bytes: number
    peak_rss_mib?: number
    verified: boolean
  } | null
  zstd: LegacyCase['xdelta3']
}

function one(x: number): Spread {
  return { n: 1, median: x, min: x, max: x, p99: null }
}

function fromLegacy(c: SnapshotCaseResult | LegacyCase): SnapshotCaseResult {
  if (typeof c.sustain.encode_s !== 'number') return c as SnapshotCaseResult
  const l = c as LegacyCase
  const native = (n: LegacyCase['xdelta3']): NativeResult | null =>
    n && {
      encode_s: one(n.encode_s),
      decode_s: one(n.decode_s),
      delta_bytes: n.delta_bytes,
      peak_rss_mib: n.peak_rss_mib ?? null,
      verified: n.verified,
    }
  return {
    name: l.name,
    image_mib: l.image_mib,
    changed_pct: l.changed_pct,
    kind: l.name.includes('append') ? 'append' : 'pages',
    load_1m: l.load_avg_1m ?? [],
    sustain: {
      encode_s: one(Number((l.sustain.encode_s + l.sustain.pool_start_s).toFixed(3))),
      encode_warm_s: one(l.sustain.encode_s),
      restore_s: one(l.sustain.restore_s),
      restore_warm_s: one(l.sustain.restore_s),
      delta_bytes: l.sustain.delta_bytes,
      peak_rss_mib: l.sustain.peak_rss_mib,
      verified: l.sustain.verified,
    },
    xdelta3: native(l.xdelta3),
    zstd: native(l.zstd),
  }
}

function mbPerS(image_mib: number, s: Spread): string {
  const rate = (x: number) => Math.round((image_mib * MB) / 1e6 / x)
  return s.n === 1 ? `${rate(s.median)}` : `${rate(s.median)} (${rate(s.max)}-${rate(s.min)})`
}

function render(run: SnapshotRun): string {
  const cases = run.cases.map(fromLegacy)
  const rows = cases.flatMap((c) => {
    const load = c.load_1m.join('-') || '-'
    const s = c.sustain
    const out: unknown[][] = [
      [
        c.name,
        'sustain',
        showSpread(s.encode_s),
        showSpread(s.encode_warm_s),
        s.delta_bytes,
        showSpread(s.restore_s),
        mbPerS(c.image_mib, s.restore_warm_s),
        s.peak_rss_mib,
        s.verified,
        load,
      ],
    ]
    for (const [tool, n] of [
      ['xdelta3', c.xdelta3],
      ['zstd', c.zstd],
    ] as const) {
      if (n)
        out.push([
          c.name,
          tool,
          showSpread(n.encode_s),
          '-',
          n.delta_bytes,
          showSpread(n.decode_s),
          mbPerS(c.image_mib, n.decode_s),
          n.peak_rss_mib ?? '-',
          n.verified,
          load,
        ])
    }
    return out
  })
  const table = markdownTable(
    [
      'case',
      'tool',
      'encode s',
      'encode s, pool warm',
      'delta bytes',
      'restore s',
      'restore MB/s (warm for Sustain)',
      'peak RSS MiB',
      'verified',
      'load 1m',
    ],
    rows,
  )
  const legacy =
    run.threads === undefined
      ? ['This run predates the rounds: one sample per case, Sustain always first, zstd on one thread.', '']
      : []
  return [...legacy, table, '', ...targets(cases)].join('\n')
}

function verdict(met: boolean): string {
  return met ? 'met' : '**NOT met**'
}

function targets(cases: SnapshotCaseResult[]): string[] {
  const out = ['Targets, like for like (Sustain counting its pool start-up; medians):']
  const key = cases.find((c) => c.name === '256MiB-pages-1pct')
  if (key?.xdelta3) {
    const cold = key.xdelta3.encode_s.median / key.sustain.encode_s.median
    const warm = key.xdelta3.encode_s.median / key.sustain.encode_warm_s.median
    const ratio = key.sustain.delta_bytes / key.xdelta3.delta_bytes
    out.push(
      `- 256 MiB / 1 %: encode ${cold.toFixed(2)}x as fast as xdelta3 counting start-up (target >= 2x): ${verdict(cold >= 2)}; ${warm.toFixed(2)}x with the pool warm.`,
    )
    out.push(
      `- 256 MiB / 1 %: delta ${ratio.toFixed(3)}x xdelta3's bytes (target <= 1.1x): ${verdict(ratio <= 1.1)}`,
    )
  }
  const compared = cases.filter((c) => c.xdelta3 !== null)
  if (compared.length > 0) {
    const slowest = compared
      .map((c) => ({ name: c.name, rate: (c.image_mib * MB) / 1e6 / c.sustain.restore_warm_s.median }))
      .sort((a, b) => a.rate - b.rate)[0]!
    out.push(
      `- restore: slowest case ${slowest.name} at ${Math.round(slowest.rate)} MB/s, pool warm (target >= 500 on every case): ${verdict(slowest.rate >= 500)}`,
    )
  }
  for (const c of cases.filter((c) => c.xdelta3 === null)) {
    out.push(
      `- ${c.name} (memory case, no peers): restore ${mbPerS(c.image_mib, c.sustain.restore_warm_s)} MB/s, peak RSS ${c.sustain.peak_rss_mib} MiB (target < 256): ${verdict(c.sustain.peak_rss_mib < 256)}`,
    )
  }
  return out
}

function summary(run: SnapshotRun & { commit?: string; date?: string; load_before?: number[] }): string {
  const cases = run.cases.map(fromLegacy)
  const key = cases.find((c) => c.name === '256MiB-pages-1pct')
  const head = `${run.date ?? 'undated'}, commit ${run.commit ?? '?'}, load ${run.load_before?.[0] ?? cases[0]?.load_1m[0] ?? '?'}`
  if (!key?.xdelta3) return `${head}: ${cases.map((c) => c.name).join(', ')}`
  return `${head}: 256 MiB / 1 % encode ${(key.xdelta3.encode_s.median / key.sustain.encode_s.median).toFixed(2)}x xdelta3 with start-up (${(key.xdelta3.encode_s.median / key.sustain.encode_warm_s.median).toFixed(2)}x warm), restore ${mbPerS(key.image_mib, key.sustain.restore_warm_s)} MB/s`
}

export const snapshotSection: Section<SnapshotRun> = {
  file: 'snapshot.json',
  heading: 'Snapshot engine',
  method: [
    'Sustain (delta file of `sustain image diff` / `image apply`: 1 MiB chunks, xdelta3-wasm, a pool of worker threads,',
    'as many as cores) beside native `xdelta3 -e -s` (one thread: it has no thread option) and `zstd --patch-from',
    '--long=31 -T<same thread count>`, on the same seeded images (AES-CTR keystream from the case name).',
    '"pages" cases overwrite a random run (1 B to 4 KiB) inside the given share of 4 KiB pages; "runs" overwrite',
    '1 MiB runs at random unaligned offsets; "append" is mbox-like text growing by the share. Each round runs',
    'all tools, the first one rotating; figures are medians (min-max). Sustain runs in a child process; its',
    '"encode s" counts the worker pool start-up (what a user waits for when nothing is warm), the warm figure',
    'is beside it. Restores are verified byte for byte and not fsynced (like the native tools). Native tools',
    'are timed as whole processes via `/usr/bin/time -v`.',
  ].join('\n'),
  render,
  summary,
}
