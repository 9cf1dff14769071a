import { type LegacyMeta, type Section, tailLabel } from './section.ts'

const MiB = 1024 * 1024
/** Candidates of the detection phases (fixed in bench/overlay.ts). */
const CANDIDATES = 3

/** The overlay bench writes a wide record; every phase may be missing from a run made with --only. */
export interface OverlayRun {
  quick: boolean
  replication?: Record<string, any>
  false_suspicions_during_replication?: number
  detection?: Record<string, any>
  detection_during_replication?: Record<string, any>
  false_suspicions?: { count: number; reports: number; window_s: number; load_avg: number }
  /** A healthy server's lanes reset from outside: suspicions that followed (issue 22). */
  false_on_resets?: Record<string, any>
  control?: Record<string, any>[]
  false_down_reasons?: Record<string, number>
  /** Set by `--only … --merge`: the phases re-run; the others come from the run named by base_*. */
  rerun?: { phases: string[]; date: string; base_date?: string; base_commit?: string | null }
}

/** The first version kept its date (a day) and machine (text) in RunMeta's field names. */
interface LegacyOverlayRun extends OverlayRun {
  machine?: string | { cpus: number; node: string }
}

/** "p50 / max" or "p50 / p99" of a detection summary, as its sample count supports. */
function detectionPair(d: Record<string, any>, signal: 'sigkill' | 'sigstop'): string {
  const n: number = d.samples_per_signal ?? 0
  const tail = n >= 100 ? d[`${signal}_p99_ms`] : (d[`${signal}_max_ms`] ?? d[`${signal}_p99_ms`])
  return `${d[`${signal}_p50_ms`]} / ${tail} ms`
}

function detectionRows(d: Record<string, any>, what: string, runs: string): string[] {
  const n: number = d.samples_per_signal ?? 0
  const tail = tailLabel(n)
  const verdict = (signal: 'sigkill' | 'sigstop') => {
    const value = n >= 100 ? d[`${signal}_p99_ms`] : (d[`${signal}_max_ms`] ?? d[`${signal}_p99_ms`])
    return value < 1000 ? 'met' : '**NOT met**'
  }
  return [
    `| ${what} SIGKILL, p50 / ${tail} (${runs}, ${n} samples per signal) | ${detectionPair(d, 'sigkill')} | ${tail} < 1000 ms: ${verdict('sigkill')} | ${d.load_avg} |`,
    `| ${what} SIGSTOP, p50 / ${tail} | ${detectionPair(d, 'sigstop')} | ${tail} < 1000 ms: ${verdict('sigstop')} | ${d.load_avg} |`,
  ]
}

/** "gone 57, suspected 3": how the samples of one cause were found. */
function foundBy(count: Record<string, number> | undefined): string {
  return count
    ? Object.entries(count)
        .map(([path, n]) => `${path} ${n}`)
        .join(', ')
    : 'not recorded'
}

/** Detection by cause (runs that record `samples_per_cause`): event paths first, silence last. */
function causeRows(d: Record<string, any>): string[] {
  const n: number = d.samples_per_cause
  const tail = tailLabel(n)
  const load = `${d.load_before} -> ${d.load_after}`
  const value = (cause: string) => (n >= 100 ? d[`${cause}_p99_ms`] : d[`${cause}_max_ms`])
  const row = (cause: string, what: string, target_ms: number | null) => {
    const verdict =
      target_ms === null
        ? '—'
        : `${tail} <= ${target_ms} ms: ${value(cause) <= target_ms ? 'met' : '**NOT met**'}`
    return `| detection after ${what}, p50 / ${tail} (${d.runs} runs x ${CANDIDATES} candidates, ${n} samples; found by ${foundBy(d.paths?.[cause])}) | ${d[`${cause}_p50_ms`]} / ${value(cause)} ms | ${verdict} | ${load} |`
  }
  return [
    row('sigkill', "SIGKILL of the server's process group", 100),
    row('sigterm', 'SIGTERM', 100),
    row('uncaught', 'an uncaught error in the server', null),
    row('sigstop', 'SIGSTOP', 500),
    `| detection after the server's network is cut | ${d.cut_p99_ms ?? `not measured here (${d.cut_note ?? 'needs the fault lab'})`} | ${tail} <= 500 ms | — |`,
  ]
}

function cores(run: LegacyOverlayRun): number | string {
  if (typeof run.machine === 'string') return run.machine.split(' ')[0]!
  return run.machine?.cpus ?? '?'
}

function render(run: LegacyOverlayRun): string {
  const r = run.replication
  const d = run.detection
  const b = run.detection_during_replication
  const f = run.false_suspicions
  const lines: string[] = []
  if (run.rerun) {
    const base = run.rerun.base_date
      ? ` the other phases are from the run of ${run.rerun.base_date}, commit ${run.rerun.base_commit ?? 'unknown'}`
      : ' the other phases are from the run before'
    lines.push(
      `Phases ${run.rerun.phases.join(', ')} re-run on ${run.rerun.date} with \`--only … --merge\`;${base}.`,
      '',
    )
  }
  lines.push('| metric | value | target | load avg |', '|---|---|---|---|')
  if (r) {
    lines.push(
      r.naive_same_transport_mb_per_s === undefined
        ? `| replication of ${r.bytes / MiB} MiB to 1 candidate | ${r.mb_per_s_1} MB/s (${r.vs_naive_1}x plain hypercore on its defaults, ${r.fraction_of_tcp_1} of TCP; no like-for-like baseline in this run) | >= 1.5x plain hypercore at the same block size and transport: not judged | ${r.load_avg.one} |`
        : `| replication of ${r.bytes / MiB} MiB to 1 candidate | ${r.mb_per_s_1} MB/s (${r.vs_naive_same_transport_1}x plain hypercore at the same block size, transport and process settings; ${r.vs_naive_1}x plain hypercore on its defaults; ${r.fraction_of_tcp_1} of TCP) | >= 1.5x like for like: ${r.vs_naive_same_transport_1 >= 1.5 ? 'met' : '**NOT met**'} | ${r.load_avg.one} |`,
      `| replication to 4 candidates at once, aggregate | ${r.mb_per_s_4} MB/s (${r.four_vs_one}x the figure to 1; ${r.uploads_per_download_4} blocks uploaded per block downloaded, ${r.uploads_per_download_1} to 1) | >= the figure to 1: ${r.four_vs_one >= 1 ? 'met' : '**NOT met**'} | ${r.load_avg.four} |`,
      `| CPU of all nodes per MiB delivered, to 1 / to 4 (cores they kept busy: ${r.cores_busy_1} / ${r.cores_busy_4} of ${cores(run)}) | ${r.cpu_ms_per_mib_1} / ${r.cpu_ms_per_mib_4} ms | not growing with fan-out | ${r.load_avg.one} / ${r.load_avg.four} |`,
      `| the same over the hyperswarm data plane only (lane off, as where TCP is blocked), to 1 / to 4 aggregate | ${r.data_plane_mb_per_s_1} / ${r.data_plane_mb_per_s_4} MB/s (${r.data_plane_vs_naive_1}x plain hypercore; to 4 ${r.data_plane_four_vs_one}x to 1) | — | ${r.load_avg.data_plane} |`,
      `| plain hypercore, default settings, 64 KiB blocks, 1 reader | ${r.naive_hypercore_mb_per_s} MB/s | baseline | ${r.load_avg.naive} |`,
      `| the same with the process settings Sustain's nodes start with (heap flags, malloc, crc32c) | ${r.naive_tuned_hypercore_mb_per_s} MB/s (the figure to 1 is ${r.vs_naive_tuned_1}x it) | — | ${r.load_avg.naive_tuned} |`,
      `| plain TCP copy over loopback | ${r.tcp_mb_per_s} MB/s | reference | ${r.load_avg.tcp} |`,
    )
    if (r.naive_same_transport_mb_per_s !== undefined)
      lines.push(
        `| plain hypercore with Sustain's block size (1 MiB) and process settings, on hyperswarm (UDX) | ${r.naive_big_blocks_mb_per_s} MB/s | — | ${r.load_avg.naive_big_blocks} |`,
        `| the same over Noise on a loopback TCP connection, the transport of Sustain's lane (like for like) | ${r.naive_same_transport_mb_per_s} MB/s | baseline | ${r.load_avg.naive_same_transport} |`,
        `| gain of each of Sustain's choices: 1 MiB blocks / lane transport / patches and the rest of Sustain | ${r.gain.block_size}x / ${r.gain.transport}x / ${r.gain.patches_and_rest}x | — | — |`,
      )
  }
  if (d?.samples_per_cause) lines.push(...causeRows(d))
  else if (d) lines.push(...detectionRows(d, 'detection after', `${d.runs} runs x ${CANDIDATES} candidates`))
  const resets = run.false_on_resets
  if (resets)
    lines.push(
      `| false suspicions while a healthy server's lanes are reset from outside (\`ss -K\`, ${resets.window_s} s: ${resets.connections_reset} connections reset; redial verdicts ${JSON.stringify(resets.lane_verdicts)}) | ${resets.false_on_resets} | 0 | ${resets.load_before} -> ${resets.load_after} |`,
    )
  if (b)
    lines.push(
      ...detectionRows(b, `detection during bulk replication to ${CANDIDATES} candidates,`, `${b.runs} runs`),
    )
  if (f)
    lines.push(
      `| false suspicions in ${f.window_s} s, both cores saturated | ${f.count} | 0 | ${f.load_avg} |`,
    )
  if (r)
    lines.push(
      `| false suspicions during the replication runs (to 1 and to 4; longest main-thread event-loop stall of any node ${r.loop_delay_max_ms_1} / ${r.loop_delay_max_ms_4} ms) | ${run.false_suspicions_during_replication} | 0 | ${r.load_avg.one} / ${r.load_avg.four} |`,
    )
  if (b)
    lines.push(
      `| false suspicions during the bulk-detection runs, before the fault | ${b.false_suspicions_before_fault} | 0 | ${b.load_avg} |`,
    )
  for (const c of run.control ?? [])
    lines.push(
      `| control plane per node, ${c.nodes} nodes (idle) | ${c.frame_bytes_sent_per_s} B/s of frames, ${c.control_wire_bytes_written_per_s} B/s on the control plane's wire (${c.wire_bytes_written_per_s} B/s both planes) | — | ${c.load_avg} |`,
    )
  if (r) {
    const per = r.rounds
    lines.push(
      '',
      `Replication figures are medians of ${per.tcp.length} interleaved rounds; per round: TCP ${per.tcp.join(', ')}; plain hypercore ${per.naive.join(', ')}; tuned ${per.naive_tuned.join(', ')}${per.naive_same_transport ? `; 1 MiB blocks ${per.naive_big_blocks.join(', ')}; 1 MiB blocks on the lane transport ${per.naive_same_transport.join(', ')}` : ''}; to 1 ${per.one.join(', ')}; to 4 ${per.four.join(', ')}; data plane only, to 1 ${per.data_plane_one.join(', ')}, to 4 ${per.data_plane_four.join(', ')} MB/s.`,
    )
  }
  return lines.join('\n')
}

function summary(run: LegacyOverlayRun & { date?: string; commit?: string; load_before?: number[] }): string {
  const r = run.replication
  const head = `${run.date ?? 'undated'}, commit ${run.commit ?? '?'}, load 1m ${run.load_before?.[0] ?? '?'}${run.quick ? ', --quick' : ''}`
  return r
    ? `${head}: to 1 candidate ${r.mb_per_s_1} MB/s (${r.vs_naive_1}x plain hypercore), to 4 ${r.mb_per_s_4} MB/s`
    : `${head}: phases ${Object.keys(run)
        .filter((k) =>
          ['detection', 'detection_during_replication', 'false_suspicions', 'control'].includes(k),
        )
        .join(', ')}`
}

export const overlaySection: Section<OverlayRun> = {
  file: 'overlay.json',
  heading: 'Overlay',
  method: [
    'Inside the loopback-only namespace; all processes share the cores, so each figure shows the 1-minute load',
    'average when its phase started (a range over the trials for replication). MB/s here means MiB/s.',
    'Replication time runs from the candidate learning of the snapshot to holding all of it; candidates are',
    'connected to the server (on their lanes) before it publishes and learn of the snapshot when it is whole, as',
    'members of a running federation do; the plain-hypercore reader likewise connects before its writer appends',
    'and starts when it learns the core is whole. Writer and reader of every trial are processes of their own.',
    "Sustain's node processes start with the settings of src/util/process-settings.ts (V8 heap flags, glibc",
    "malloc settings, RocksDB's crc32c in hardware; as `sustain demo` and the README's unit do); the",
    'plain-hypercore baseline runs with the defaults, and once more with the same settings. Replication rounds',
    'interleave TCP, plain hypercore, the same tuned, overlay to 1 and to 4 (to 1 and to 4 taking turns to go',
    'first). The overlay figures travel on the data lane (a direct TCP connection, Noise-encrypted like',
    'hyperswarm, overlay/lane.ts) where the peer is reachable; the data-plane row is the fallback over',
    'hyperswarm UDX. Control traffic (admission, pings, control messages) runs on its own hyperswarm, apart from',
    "replication. Detection: time from the signal to the candidates' peer-down. Where the replication CPU goes",
    "(perf profiles) and what bounds these figures: ARCHITECTURE.md, overlay/ and 'Not yet'.",
    'What differs between Sustain and the plain-hypercore baselines: Sustain replicates 1 MiB blocks on its data',
    'lane (Noise over TCP) with its hypercore patches (overlay/hypercore-patches/). The like-for-like baseline is',
    "plain hypercore with 1 MiB blocks, Sustain's process settings and Noise over a loopback TCP connection: only",
    "the patches and Sustain's own code differ; hypercore's defaults (64 KiB blocks over hyperswarm's UDX) are",
    'beside it, and the gain of each choice is given apart. The data-plane row is Sustain over UDX.',
  ].join('\n'),
  render,
  summary,
  legacy: (run: OverlayRun): LegacyMeta => ({
    command: `npm run bench:overlay${run.quick ? ' -- --quick' : ''}`,
    rounds: run.replication?.rounds?.tcp?.length,
  }),
}
