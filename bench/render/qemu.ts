import { markdownTable } from '../lib/results-md.ts'
import type { LegacyMeta, Section } from './section.ts'

const MIB = 1024 * 1024

export interface IntervalResult {
  interval_s: number
  delta_bytes: number[]
  delta_pct_of_memory_median: number
}

export interface FromBootResult {
  interval_s: number
  snapshots: number
  failed_snapshots: number
  failures: string[]
  memory_state_bytes: { first: number; max: number }
  delta_bytes: number[]
  codec_refused_chunks: number
  rebases: string[]
}

/** Median and maximum of `samples` pauses (too few for a percentile). */
export interface PauseFigures {
  p50: number
  max: number
  samples: number
}

/** The large guest of issue 21 (absent from runs before it). */
export interface LargeResult {
  memory_mib: number
  disk_mib: number
  load: { memory_kib_per_s: number; disk_kib_per_s: number; memory_ring_mib: number }
  snapshots: number
  failed_snapshots: number
  pause_p50_ms: number
  /** Nearest rank: with fewer than 100 snapshots, the maximum. */
  pause_p99_ms: number
  pause_max_ms: number
  /** Median delta stored per snapshot (memory stream and disks), against the base. */
  bytes_per_snapshot: number
  /** What the load rewrote between two snapshots (memory and disk), median. */
  changed_bytes_per_snapshot: number
  bytes_over_changed: number
  /** Capture and encoding of one snapshot, median. */
  snapshot_wall_s: number
  /** Host time minus the guest's own uptime across each snapshot (what the guest did not see pass). */
  guest_clock_lag_ms: number[]
  restore_materialize_s: number
  restore_to_answering_s: number
  /** Today's stop -> stream -> whole disks -> cont on the same guest, median. */
  stop_copy_pause_ms: number
  /** QEMU's savevm into qcow2 disks on the same guest, median. */
  savevm_pause_ms: number
}

export interface QemuRun {
  quick: boolean
  guest: { memory_mib: number; accel: string | null }
  sustain: {
    accel: string | null
    boot_to_answering_s: number
    failed_snapshots: number
    from_boot: FromBootResult
    pause_ms: PauseFigures
    full_state_bytes: number
    intervals: IntervalResult[]
    restore_materialize_s: number
    restore_to_answering_s: number
  }
  savevm: {
    savevm_pause_ms: PauseFigures
    qcow2_growth_bytes_per_savevm: number
    loadvm_start_to_answering_s: number
  }
  large?: LargeResult
}

/** The first version recorded the 1-minute load at the end, beside the core count. */
interface LegacyQemuRun extends QemuRun {
  machine?: { cpus: number; loadavg_1m: number }
}

const TARGET = { delta_pct_at_5_s: 5, restore_s: 5 }

const round = (x: number, digits: number) => Math.round(x * 10 ** digits) / 10 ** digits
const verdict = (met: boolean) => (met ? 'met' : '**NOT met**')

function render(run: QemuRun): string {
  const { sustain, savevm } = run
  const memory_bytes = run.guest.memory_mib * MIB
  const b = sustain.from_boot
  const pauses = (p: PauseFigures) => `${p.p50} / ${p.max} (${p.samples} snapshots)`
  const rows = [
    ['guest memory', `${run.guest.memory_mib} MiB (${sustain.accel})`, `${run.guest.memory_mib} MiB`],
    ['snapshot pause median / max (ms)', pauses(sustain.pause_ms), pauses(savevm.savevm_pause_ms)],
    ['failed snapshots (must be 0)', sustain.failed_snapshots, '-'],
    [
      `from boot: ${b.snapshots} snapshots every ${b.interval_s} s from 1 s after start`,
      `${b.failed_snapshots} failed; memory stream ${b.memory_state_bytes.first} -> ${b.memory_state_bytes.max} bytes; delta bytes ${b.delta_bytes.join(', ')}; ${b.codec_refused_chunks} chunks stored raw (codec refused); rebases: ${b.rebases.join('; ') || 'none'}`,
      '-',
    ],
    ['full state (bytes)', sustain.full_state_bytes, '-'],
    ...sustain.intervals.map((r) => [
      `delta per snapshot at ${r.interval_s} s (bytes; median % of memory)`,
      `${r.delta_bytes.join(', ')} (${r.delta_pct_of_memory_median} %)`,
      r.interval_s === 1
        ? `${savevm.qcow2_growth_bytes_per_savevm} (qcow2 growth per savevm, ${round((100 * savevm.qcow2_growth_bytes_per_savevm) / memory_bytes, 1)} %)`
        : '-',
    ]),
    [
      'restore to answering (s)',
      `${sustain.restore_to_answering_s} (materialise ${sustain.restore_materialize_s})`,
      `${savevm.loadvm_start_to_answering_s} (-loadvm)`,
    ],
    ['fresh boot to answering (s; snapshots every 5 s during it)', sustain.boot_to_answering_s, '-'],
  ]
  const lines = [markdownTable(['measure', 'Sustain', 'QEMU savevm/loadvm'], rows), '', 'Targets:']
  const at5 = sustain.intervals.find((r) => r.interval_s === 5)
  if (at5)
    lines.push(
      `- delta at 5 s: ${at5.delta_pct_of_memory_median} % of memory (target < ${TARGET.delta_pct_at_5_s} %): ${verdict(at5.delta_pct_of_memory_median < TARGET.delta_pct_at_5_s)}`,
    )
  lines.push(
    `- restore to answering under ${sustain.accel}: ${sustain.restore_to_answering_s} s (target < ${TARGET.restore_s} s): ${verdict(sustain.restore_to_answering_s < TARGET.restore_s)}`,
    `- failed snapshots: ${sustain.failed_snapshots} (must be 0): ${verdict(sustain.failed_snapshots === 0)}`,
  )
  if (run.large) lines.push('', renderLarge(run.large, sustain.accel))
  return lines.join('\n')
}

const LARGE_TARGET = { pause_p99_ms: 20, bytes_over_changed: 1.5, restore_s: 3 }

function renderLarge(l: LargeResult, accel: string | null): string {
  const rows = [
    ['guest', `${l.memory_mib} MiB memory, ${l.disk_mib} MiB sparse disk (${accel})`],
    [
      'write load',
      `${l.load.memory_kib_per_s} KiB/s of a ${l.load.memory_ring_mib} MiB memory ring, ${l.load.disk_kib_per_s} KiB/s of the disk`,
    ],
    ['background snapshots (failed)', `${l.snapshots} (${l.failed_snapshots})`],
    ['pause p50 / p99 / max (ms)', `${l.pause_p50_ms} / ${l.pause_p99_ms} / ${l.pause_max_ms}`],
    ['stop-and-copy pause, same guest (ms)', l.stop_copy_pause_ms],
    ['QEMU savevm pause, same guest (ms)', l.savevm_pause_ms],
    [
      'bytes per snapshot / changed by the load',
      `${l.bytes_per_snapshot} / ${l.changed_bytes_per_snapshot} (${l.bytes_over_changed}x)`,
    ],
    ['snapshot wall time, capture + encode (s)', l.snapshot_wall_s],
    ["guest clock behind the host's across a snapshot (ms)", l.guest_clock_lag_ms.join(', ')],
    ['restore to answering (s)', `${l.restore_to_answering_s} (materialise ${l.restore_materialize_s})`],
  ]
  return [
    markdownTable(['large guest (issue 21)', 'value'], rows),
    '',
    'Targets (large guest):',
    `- pause p99 ${l.pause_p99_ms} ms (target <= ${LARGE_TARGET.pause_p99_ms} ms): ${verdict(l.pause_p99_ms <= LARGE_TARGET.pause_p99_ms)}`,
    `- bytes per snapshot ${l.bytes_over_changed}x what changed (target <= ${LARGE_TARGET.bytes_over_changed}x): ${verdict(l.bytes_over_changed <= LARGE_TARGET.bytes_over_changed)}`,
    `- restore to answering ${l.restore_to_answering_s} s (target <= ${LARGE_TARGET.restore_s} s): ${verdict(l.restore_to_answering_s <= LARGE_TARGET.restore_s)}`,
  ].join('\n')
}

function summary(run: QemuRun & { date?: string; commit?: string; load_before?: number[] }): string {
  const s = run.sustain
  return `${run.date ?? 'undated'}, commit ${run.commit ?? '?'}, load 1m ${run.load_before?.[0] ?? '?'}${run.quick ? ', --quick' : ''}: pause median ${s.pause_ms.p50} ms (savevm ${run.savevm.savevm_pause_ms.p50}), restore to answering ${s.restore_to_answering_s} s, failed snapshots ${s.failed_snapshots}`
}

export const qemuSection: Section<QemuRun> = {
  file: 'qemu.json',
  heading: 'QEMU',
  method: [
    'The example guest (examples/qemu-guest: busybox initramfs, 128 MiB, counter ticking every 0.5 s; TCG unless',
    "KVM proves usable), one pass. Sustain: snapshots every 5 s from the guest's first second on (while it boots and",
    'its migration stream grows), then a base and deltas at each interval while the counter runs; a snapshot is',
    'stop -> migration stream to a file -> disk copy -> cont; deltas are each snapshot against its base (1 MiB',
    'chunks, 4 KiB pages, xdelta3). Restore: materialise base + delta, start with -incoming, cont, until the',
    'banner answers. Peer: QEMU `savevm` into the qcow2 disk (internal snapshot, VM paused throughout) and',
    '`-loadvm` at start. Too few pauses for a percentile: median and maximum, with their count.',
    'Large guest (issue 21; runs since then): the same guest with 2 GiB memory and an 8 GiB sparse raw disk (1 GiB /',
    '2 GiB with --quick), load.sh rewriting 1 % of memory and 0.1 % of the disk per 5 s; background snapshots every',
    '5 s (or as fast as they finish), then stop-and-copy captures and QEMU savevm on the same guest; the tail is',
    'the nearest-rank 99th percentile (the maximum below 100 snapshots); restore = materialise + -incoming start',
    'until the banner answers.',
  ].join('\n'),
  render,
  summary,
  legacy: (run: LegacyQemuRun): LegacyMeta => ({
    command: `npm run bench:qemu${run.quick ? ' -- --quick' : ''}`,
    rounds: 1,
    load_after: run.machine ? [run.machine.loadavg_1m] : undefined,
  }),
}
