import { markdownTable } from '../lib/results-md.ts'
import type { Section } from './section.ts'

/** Median (min-max) over the rounds of each round's figure. */
export interface Spread {
  median: number
  min: number
  max: number
}

export interface QemuZeroLossMode {
  /** Acknowledged lines in the steady windows of every round. */
  acks: number
  acks_per_s: Spread
  /** Each round's median send-to-"OK" latency of the client (null: no ack in any round's window). */
  ack_latency_ms: Spread | null
  /** The slowest ack of every round (null: none). */
  ack_latency_max_ms: number | null
  /** Each round's median freeze-to-release time of the server (null without output commit). */
  commit_ms: Spread | null
  releases: number
  /** Each round's median capture pause of the guest (null: no capture in any round's window). */
  pause_ms: Spread | null
  snapshots_per_s: Spread
}

export interface QemuZeroLossRun {
  quick: boolean
  steady_ms: number
  snapshot_interval_ms: number
  modes: Record<string, QemuZeroLossMode>
  /** k1's median ack latency less off's (null: a mode had no ack). */
  added_latency_ms: number | null
}

const show = (s: Spread | null | undefined) =>
  s == null || s.median == null ? '-' : `${s.median} (${s.min}-${s.max})`

function render(run: QemuZeroLossRun): string {
  const rows = Object.entries(run.modes).map(([name, m]) => [
    name,
    show(m.acks_per_s),
    show(m.ack_latency_ms),
    m.ack_latency_max_ms ?? '-',
    show(m.commit_ms),
    m.releases,
    show(m.pause_ms),
    show(m.snapshots_per_s),
    m.acks,
  ])
  return [
    `The example guest (128 MiB, stop-and-copy capture), ${run.steady_ms / 1000} s steady window per round, snapshot interval ${run.snapshot_interval_ms / 1000} s (output commit adds snapshots on waiting output).`,
    '',
    markdownTable(
      [
        'output_commit',
        'acks/s',
        'ack latency ms (median)',
        'slowest ack ms',
        'freeze to release ms (median)',
        'releases',
        'capture pause ms (median)',
        'snapshots/s',
        'acks',
      ],
      rows,
    ),
    '',
    `Added latency per acknowledged write with k = 1: ${run.added_latency_ms ?? '-'} ms (median against median).`,
  ].join('\n')
}

export const qemuZeroLossSection: Section<QemuZeroLossRun> = {
  file: 'qemu-zero-loss.json',
  heading: 'Zero-loss mode for a QEMU guest',
  method: [
    "Three `sustain join` processes run the example QEMU guest; one client sends line after line to the guest's",
    "acknowledging line service (examples/qemu-guest/guest/ack.sh) through a candidate's front door, one at a",
    'time, and counts an "OK". Each round starts a fresh federation with `output_commit` off and one with',
    "k = 1, in alternating order (off first in odd rounds). The freeze-to-release time is the server's own record of each release (the capture's freeze until",
    'the snapshot is stored on k candidates); the ack latency is what the client saw. Losses across SIGKILLs',
    'are checked by test/qemu/qemu-zero-loss.slow.test.ts, not here.',
  ].join('\n'),
  render,
  summary: (run) =>
    `${run.date ?? 'undated'}, commit ${run.commit ?? '?'}, load ${run.load_before?.[0] ?? '?'}: ack latency off ${run.modes['off']?.ack_latency_ms?.median ?? '-'} ms, k1 ${run.modes['k1']?.ack_latency_ms?.median ?? '-'} ms, freeze to release ${run.modes['k1']?.commit_ms?.median ?? '?'} ms`,
}
