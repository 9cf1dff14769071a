/**
 * Snapshot pause of the process driver: how long the service is SIGSTOPped per capture, on a 100 MiB
 * state directory with 1 % changed between captures (20 small files rewritten, one big mbox appended
 * to). `npm run bench:pause [-- --captures 50] [--quick] [--modes a,b]`. Prints JSON, keeps the run in
 * bench/results/pause.json (earlier runs kept) and regenerates bench/RESULTS.md (bench/render/pause.ts).
 * The mbox is declared append_only (as the mail example does): its growth is what a capture copies.
 *
 * Modes: `no_precopy` (every change is copied inside the pause: the worst case, changes landing just
 * before the capture), `precopy` (changed files are copied once while the service runs, the pause
 * re-checks), `precopy_live_writer` (as precopy, while the service itself appends to the mbox all the
 * time, so the mbox has always changed again by the pause), `no_precopy_append` (1 MiB appended to the
 * mbox, nothing else, all of it in the pause), `precopy_small_append` (one mail of 4 KiB appended, what
 * zero-loss mode snapshots for; each capture is also encoded into a snapshot store, timed apart).
 * Peer: `cp -a` of the whole directory, what a naive stop-copy-start tool pauses for.
 */
import { spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { appendFile, mkdir, rm, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createLogger } from '../lib/log.ts'
import { createCodecPool } from '../snapshot/codec-pool.ts'
import { SnapshotEngine } from '../snapshot/engine.ts'
import { SnapshotStore } from '../snapshot/store.ts'
import { createProcessDriver } from '../src/drivers/process/driver.ts'
import { parseServiceManifest } from '../src/drivers/process/manifest.ts'
import { keepRun } from './lib/results-file.ts'
import { benchCommand, type RunMeta, startRun } from './lib/run-meta.ts'
import type { PauseRun } from './render/pause.ts'
import { renderResults } from './render/results-md.ts'

const KIB = 1024
const MIB = 1024 * KIB
const args = process.argv.slice(2)
const quick = args.includes('--quick')
const captures_arg = args.indexOf('--captures')
const CAPTURES = captures_arg >= 0 ? Number(args[captures_arg + 1]) : quick ? 10 : 50
const SMALL_FILES = 2400
const SMALL_BYTES = 25 * KIB
const MBOX_BYTES = 40 * MIB
const REWRITE_FILES = 20
const APPEND_BYTES = 512 * KIB
const APPEND_ONLY_BYTES = 1 * MIB
const MAIL_BYTES = 4 * KIB
const ROOT = fileURLToPath(new URL('..', import.meta.url))
const TMP = join(ROOT, '.tmp', 'bench-pause')

const round = (x: number, digits = 1) => Math.round(x * 10 ** digits) / 10 ** digits
function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? Number.NaN
}
function say(message: string): void {
  process.stderr.write(`[bench:pause] ${message}\n`)
}

const smallName = (i: number) => join(`d${String(i % 24).padStart(2, '0')}`, `f${i}`)

async function buildState(state_dir: string): Promise<number> {
  await rm(state_dir, { recursive: true, force: true })
  for (let d = 0; d < 24; d++)
    await mkdir(join(state_dir, `d${String(d).padStart(2, '0')}`), { recursive: true })
  for (let i = 0; i < SMALL_FILES; i++)
    await writeFile(join(state_dir, smallName(i)), randomBytes(SMALL_BYTES))
  await mkdir(join(state_dir, 'mail'))
  await writeFile(join(state_dir, 'mail', 'alice'), randomBytes(MBOX_BYTES))
  return SMALL_FILES * SMALL_BYTES + MBOX_BYTES
}

/** 1 % of the state: REWRITE_FILES small files rewritten, APPEND_BYTES appended to the mbox. */
async function change(state_dir: string, round_no: number): Promise<void> {
  for (let k = 0; k < REWRITE_FILES; k++) {
    const i = (round_no * 7919 + k * 104_729) % SMALL_FILES
    await writeFile(join(state_dir, smallName(i)), randomBytes(SMALL_BYTES))
  }
  await appendFile(join(state_dir, 'mail', 'alice'), randomBytes(APPEND_BYTES))
}

/** What each mode changes between captures. */
async function changeFor(mode: Mode, state_dir: string, round_no: number): Promise<void> {
  const mbox = join(state_dir, 'mail', 'alice')
  if (mode === 'no_precopy_append') await appendFile(mbox, randomBytes(APPEND_ONLY_BYTES))
  else if (mode === 'precopy_small_append') await appendFile(mbox, randomBytes(MAIL_BYTES))
  else await change(state_dir, round_no)
}

// The live writer appends 4 KiB to the mbox every 20 ms (200 KiB/s), as a busy mail server would.
const WRITER = `const fs=require('fs');const p=process.env.SUSTAIN_STATE_DIR+'/mail/alice';const b=Buffer.alloc(4096,120);setInterval(()=>fs.appendFileSync(p,b),20)`

interface ModeResult {
  pause_p50_ms: number
  pause_p99_ms: number
  pause_max_ms: number
  /** SIGSTOP until every thread shows stopped (part of the pause). */
  settle_p50_ms: number
  /** The stat of every file in the pause (its floor). */
  scan_p50_ms: number
  first_capture_pause_ms: number
  copied_mib_p50: number
  state_mib_at_end: number
  /** capture() from call to return: pre-copy, pause, and what follows the thaw. */
  capture_p50_ms: number
  capture_p99_ms: number
  /** engine.take of the capture into a snapshot store (precopy_small_append only). */
  encode_p50_ms?: number
  encode_p99_ms?: number
}

const ALL_MODES = [
  'no_precopy',
  'precopy',
  'precopy_live_writer',
  'no_precopy_append',
  'precopy_small_append',
] as const
type Mode = (typeof ALL_MODES)[number]
const modes_arg = args.indexOf('--modes')
const MODES: Mode[] = modes_arg >= 0 ? (args[modes_arg + 1]!.split(',') as Mode[]) : [...ALL_MODES]
for (const mode of MODES) if (!ALL_MODES.includes(mode)) throw new Error(`unknown mode ${mode}`)

/** One state directory and its driver; the modes take turns, so each sees the same machine load. */
class ModeRun {
  readonly dir: string
  readonly state_dir: string
  readonly records: Record<string, unknown>[] = []
  readonly pauses: number[] = []
  readonly copied: number[] = []
  readonly settles: number[] = []
  readonly scans: number[] = []
  readonly captures: number[] = []
  readonly encodes: number[] = []
  first_capture_pause_ms = 0
  driver: ReturnType<typeof createProcessDriver> | undefined
  engine: SnapshotEngine | undefined

  constructor(readonly mode: Mode) {
    this.dir = join(TMP, mode)
    this.state_dir = join(this.dir, 'state')
  }

  async start(): Promise<void> {
    await buildState(this.state_dir)
    const log = createLogger({
      level: 'info',
      destination: {
        write: (line: string) => void this.records.push(JSON.parse(line) as Record<string, unknown>),
      },
    })
    const manifest = parseServiceManifest({
      version: 1,
      name: 'bench',
      type: 'type1',
      command: this.mode === 'precopy_live_writer' ? [process.execPath, '-e', WRITER] : ['sleep', '100000'],
      append_only: ['mail/*'],
    })
    this.driver = createProcessDriver({
      service_dir: this.dir,
      state_dir: this.state_dir,
      port: 1,
      log,
      manifest,
      precopy: !this.mode.startsWith('no_precopy'),
    })
    await this.driver.start()
    const first = await this.driver.capture() // copies everything once: the reference generation
    this.first_capture_pause_ms = first.pause_ms
    if (this.mode === 'precopy_small_append') {
      const store = await SnapshotStore.open(join(this.dir, 'store'), pool())
      this.engine = new SnapshotEngine({ store, node: 'ab'.repeat(32), retain_newest: 3 })
      await this.engine.take(first.parts, { term: 1 }) // the base
    }
    await first.release()
  }

  async round(i: number): Promise<void> {
    await changeFor(this.mode, this.state_dir, i)
    const started = performance.now()
    const capture = await this.driver!.capture()
    this.captures.push(performance.now() - started)
    this.pauses.push(capture.pause_ms)
    if (this.engine) {
      const encode_started = performance.now()
      await this.engine.take(capture.parts, { term: 1 })
      this.encodes.push(performance.now() - encode_started)
    }
    await capture.release()
    const paused = this.records.filter((r) => r['event'] === 'service_paused').at(-1)!
    this.copied.push(Number(paused['copied_bytes']) / MIB)
    this.settles.push(Number(paused['settle_ms']))
    this.scans.push(Number(paused['scan_ms']))
  }

  async result(): Promise<ModeResult> {
    await this.driver?.close()
    const { size } = await stat(join(this.state_dir, 'mail', 'alice'))
    const result: ModeResult = {
      pause_p50_ms: round(percentile(this.pauses, 50), 2),
      pause_p99_ms: round(percentile(this.pauses, 99), 2),
      pause_max_ms: round(Math.max(...this.pauses), 2),
      settle_p50_ms: round(percentile(this.settles, 50), 2),
      scan_p50_ms: round(percentile(this.scans, 50), 2),
      first_capture_pause_ms: round(this.first_capture_pause_ms, 1),
      copied_mib_p50: round(percentile(this.copied, 50), 2),
      state_mib_at_end: round((SMALL_FILES * SMALL_BYTES + size) / MIB, 1),
      capture_p50_ms: round(percentile(this.captures, 50), 1),
      capture_p99_ms: round(percentile(this.captures, 99), 1),
      ...(this.encodes.length > 0
        ? {
            encode_p50_ms: round(percentile(this.encodes, 50), 1),
            encode_p99_ms: round(percentile(this.encodes, 99), 1),
          }
        : {}),
    }
    say(`${this.mode}: ${JSON.stringify(result)}`)
    return result
  }
}

let codec_pool: ReturnType<typeof createCodecPool> | undefined
const pool = () => (codec_pool ??= createCodecPool())

async function runModes(): Promise<Partial<Record<Mode, ModeResult>>> {
  const runs = MODES.map((mode) => new ModeRun(mode))
  try {
    for (const run of runs) await run.start()
    for (let i = 0; i < CAPTURES; i++) for (const run of runs) await run.round(i)
  } finally {
    for (const run of runs) await run.driver?.close()
    await codec_pool?.close()
  }
  const results: Partial<Record<Mode, ModeResult>> = {}
  for (const run of runs) results[run.mode] = await run.result()
  return results
}

function cpWhole(runs: number): { p50_ms: number; runs: number } {
  const source = join(TMP, 'cp-source')
  const times: number[] = []
  for (let i = 0; i < runs; i++) {
    const target = join(TMP, `cp-${i}`)
    spawnSync('rm', ['-rf', target])
    const started = performance.now()
    const result = spawnSync('cp', ['-a', source, target])
    if (result.status !== 0) throw new Error(`cp -a failed: ${result.stderr.toString()}`)
    times.push(performance.now() - started)
    spawnSync('rm', ['-rf', target])
  }
  return { p50_ms: round(percentile(times, 50), 1), runs }
}

async function main(): Promise<void> {
  const finish = startRun(benchCommand('bench:pause'), CAPTURES)
  await rm(TMP, { recursive: true, force: true })
  await mkdir(TMP, { recursive: true })
  const state_bytes = await buildState(join(TMP, 'cp-source'))
  const fs_type = spawnSync('df', ['--output=fstype', TMP]).stdout.toString().trim().split('\n').at(-1) ?? '?'
  say(`state ${state_bytes / MIB} MiB on ${fs_type}; ${CAPTURES} captures per mode`)
  const cp_a = cpWhole(quick ? 3 : 5)
  say(`cp -a: ${JSON.stringify(cp_a)}`)
  await rm(join(TMP, 'cp-source'), { recursive: true, force: true })
  const modes = await runModes()
  await rm(TMP, { recursive: true, force: true })
  const result: PauseRun & RunMeta = {
    captures: CAPTURES,
    state_mib: state_bytes / MIB,
    files: SMALL_FILES + 1,
    mbox_mib_at_start: MBOX_BYTES / MIB,
    changed_per_capture: {
      rewritten_files: REWRITE_FILES,
      rewritten_kib: (REWRITE_FILES * SMALL_BYTES) / KIB,
      appended_kib: APPEND_BYTES / KIB,
    },
    fs_type,
    reflink: false,
    append_only: ['mail/*'],
    appended_kib_append_only: APPEND_ONLY_BYTES / KIB,
    mail_kib: MAIL_BYTES / KIB,
    modes,
    cp_a_whole_dir_p50_ms: cp_a.p50_ms,
    cp_a_runs: cp_a.runs,
    snapshot_pause_p99_ms: modes.precopy_live_writer?.pause_p99_ms ?? null,
    small_append_pause_p99_ms: modes.precopy_small_append?.pause_p99_ms ?? null,
    ...finish(),
  }
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`)
  await keepRun('pause.json', result)
  await renderResults()
}

await main()
