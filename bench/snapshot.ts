/**
 * Snapshot engine benchmark: Sustain (xdelta3-wasm, chunked, worker threads) beside native `xdelta3 -e -s`
 * and `zstd --patch-from -T<threads>`, on the same seeded files. `npm run bench:snapshot [-- --quick]
 * [--rounds N] [--only CASE]`. Every case runs `rounds` times (default 5), the three tools taking turns
 * to go first; figures are medians with min-max. Sustain runs in a child process (this file with
 * --child) so its peak RSS is its own; its time counts the worker pool's start-up (what a user waits for
 * when nothing is warm), and the warm figure is kept beside it. Appends the run to
 * bench/results/snapshot.json and regenerates bench/RESULTS.md.
 */
import { spawn } from 'node:child_process'
import { createCipheriv, createHash } from 'node:crypto'
import { mkdir, open, rm, stat } from 'node:fs/promises'
import { availableParallelism, loadavg } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { runMeasured, selfPeakRssMib } from './lib/process-stats.ts'
import { keepRun } from './lib/results-file.ts'
import { type RunMeta, startRun } from './lib/run-meta.ts'
import { rotation, spread } from './lib/stats.ts'
import { renderResults } from './render/results-md.ts'
import type { NativeResult, SnapshotCaseResult, SnapshotRun, SustainResult } from './render/snapshot.ts'

const HERE = dirname(fileURLToPath(import.meta.url))
const ROOT = join(HERE, '..')
const TMP = join(ROOT, '.tmp', 'bench-snapshot')
const MIB = 1024 * 1024
const PAGE = 4096
const THREADS = availableParallelism()

interface Case {
  name: string
  image_mib: number
  changed_pct: number
  /** pages: a random run (1 B to 4 KiB) in the given share of 4 KiB pages; runs: 1 MiB runs at random
   * offsets (not chunk-aligned); append: mbox-like text growing by the share. */
  kind: 'pages' | 'runs' | 'append'
  /** Also run native xdelta3 and zstd (false for the 4 GiB memory case: zstd --long needs GiBs). */
  natives: boolean
}

const FULL: Case[] = [
  ...[256, 1024].flatMap((image_mib) =>
    [0.1, 1, 10].map((changed_pct) => ({
      name: `${image_mib}MiB-pages-${changed_pct}pct`,
      image_mib,
      changed_pct,
      kind: 'pages' as const,
      natives: true,
    })),
  ),
  { name: '256MiB-runs-10pct', image_mib: 256, changed_pct: 10, kind: 'runs', natives: true },
  { name: '256MiB-append-1pct', image_mib: 256, changed_pct: 1, kind: 'append', natives: true },
  // Memory does not grow with the image: encode + restore of 4 GiB under 256 MiB RSS (Sustain only).
  { name: '4096MiB-pages-0.1pct', image_mib: 4096, changed_pct: 0.1, kind: 'pages', natives: false },
]
const QUICK = FULL.filter((c) => c.name === '256MiB-pages-1pct' || c.name === '256MiB-runs-10pct')

// ---------------------------------------------------------------- child: one Sustain operation

async function child(args: string[]): Promise<void> {
  const [op, base, second, out] = args
  const { createCodecPool } = await import('../snapshot/codec-pool.ts')
  const { applyDelta, diffImages } = await import('../snapshot/delta-file.ts')
  // The node runtime keeps its pool warm; worker start-up (tsx + wasm) is reported apart.
  const pool_started_ms = performance.now()
  const pool = createCodecPool({ threads: availableParallelism() })
  await pool.hash('sha256', new Uint8Array(1))
  const started_ms = performance.now()
  let delta_bytes = 0
  if (op === 'diff') delta_bytes = (await diffImages(base!, second!, out!, { pool })).delta_bytes
  // Native tools do not fsync their output either; Sustain's default (durable) restore does.
  else if (op === 'apply') await applyDelta(base!, second!, out!, { pool, durable: false })
  else throw new Error(`unknown child op ${op}`)
  const seconds = (performance.now() - started_ms) / 1000
  const pool_start_s = (started_ms - pool_started_ms) / 1000
  await pool.close()
  process.stdout.write(
    `${JSON.stringify({ seconds, delta_bytes, pool_start_s, peak_rss_mib: selfPeakRssMib() })}\n`,
  )
}

interface ChildResult {
  seconds: number
  delta_bytes: number
  pool_start_s: number
  peak_rss_mib: number
}

/** Children still running, ended if this process is told to stop (no process outlives the bench). */
const children = new Set<ReturnType<typeof spawn>>()
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.once(signal, () => {
    for (const c of children) c.kill('SIGKILL')
    void rm(TMP, { recursive: true, force: true }).finally(() => process.exit(128 + 15))
  })
}

async function runChild(args: string[]): Promise<ChildResult> {
  const proc = spawn(
    process.execPath,
    ['--import', 'tsx', fileURLToPath(import.meta.url), '--child', ...args],
    { stdio: ['ignore', 'pipe', 'inherit'], cwd: ROOT },
  )
  children.add(proc)
  let stdout = ''
  proc.stdout.on('data', (data: Buffer) => {
    stdout += data.toString()
  })
  const code = await new Promise<number | null>((resolve) => proc.once('close', resolve))
  children.delete(proc)
  if (code !== 0) throw new Error(`sustain child ${args[0]} exited with ${code}`)
  return JSON.parse(stdout.trim().split('\n').pop()!)
}

// ---------------------------------------------------------------- inputs

/** Seeded, so every tool sees the same bytes and a run can be repeated. */
function prng(seed: number): () => number {
  let x = seed >>> 0 || 1
  return () => {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    return (x >>> 0) / 0x100000000
  }
}

/**
 * `bytes` of seeded pseudo-random data: AES-256-CTR keystream under a key derived from the seed, so two
 * runs (and two commits) compare the same bytes, at a few hundred MB/s.
 */
function seededBytes(seed: string): (length: number) => Buffer {
  const key = createHash('sha256').update(`sustain-bench:${seed}`).digest()
  const cipher = createCipheriv('aes-256-ctr', key, Buffer.alloc(16))
  return (length) => cipher.update(Buffer.alloc(length))
}

async function writeSeeded(path: string, bytes: number, seed: string): Promise<void> {
  const next = seededBytes(seed)
  const handle = await open(path, 'w')
  for (let at = 0; at < bytes; at += 16 * MIB) {
    const block = next(Math.min(16 * MIB, bytes - at))
    await handle.write(block, 0, block.length, at)
  }
  await handle.close()
}

function mboxText(bytes: number, first: number, random: () => number): Buffer {
  const words = [
    'the',
    'mail',
    'server',
    'queue',
    'delivered',
    'message',
    'to',
    'user',
    'from',
    'example',
    'org',
  ]
  const parts: string[] = []
  let size = 0
  for (let i = first; size < bytes; i++) {
    let body = ''
    const count = 20 + Math.floor(random() * 200)
    for (let w = 0; w < count; w++)
      body += `${words[Math.floor(random() * words.length)]}${w % 12 === 11 ? '\n' : ' '}`
    const message = `From user${i % 997}@example.org Mon Nov 23 12:${String(i % 60).padStart(2, '0')}:00 2026\nMessage-ID: <${i}.${Math.floor(random() * 1e9)}@example.org>\nSubject: message ${i}\n\n${body}\n\n`
    parts.push(message)
    size += message.length
  }
  return Buffer.from(parts.join('')).subarray(0, bytes)
}

async function copyFile(from: string, to: string): Promise<void> {
  await runMeasured('cp', [from, to])
}

/** Base and new image for a case, under .tmp (gitignored). */
async function makeInputs(c: Case, dir: string): Promise<{ base: string; next: string }> {
  const base = join(dir, 'base.img')
  const next = join(dir, 'new.img')
  const random = prng(c.image_mib * 1000 + Math.round(c.changed_pct * 10))
  if (c.kind === 'append') {
    const handle = await open(base, 'w')
    for (let at = 0, n = 0; at < c.image_mib * MIB; n++) {
      const text = mboxText(Math.min(8 * MIB, c.image_mib * MIB - at), n * 100000, random)
      await handle.write(text, 0, text.length, at)
      at += text.length
    }
    await handle.close()
    await copyFile(base, next)
    const tail = mboxText(Math.round((c.image_mib * MIB * c.changed_pct) / 100), 10_000_000, random)
    const append = await open(next, 'a')
    await append.write(tail)
    await append.close()
    return { base, next }
  }
  await writeSeeded(base, c.image_mib * MIB, c.name)
  await copyFile(base, next)
  const noise = seededBytes(`${c.name}:changes`)
  const handle = await open(next, 'r+')
  if (c.kind === 'runs') {
    // 1 MiB runs at random (unaligned) offsets until the share is overwritten; runs may overlap.
    const runs = Math.round((c.image_mib * c.changed_pct) / 100)
    for (let i = 0; i < runs; i++) {
      const offset = Math.floor(random() * (c.image_mib - 1) * MIB)
      await handle.write(noise(MIB), 0, MIB, offset)
    }
  } else {
    const pages = (c.image_mib * MIB) / PAGE
    const changed = Math.round((pages * c.changed_pct) / 100)
    const picked = new Set<number>()
    while (picked.size < changed) picked.add(Math.floor(random() * pages))
    // Each changed page gets a random run of random length at a random place: from a few bytes to all 4 KiB.
    for (const page of picked) {
      const length = 1 + Math.floor(random() * PAGE)
      const offset = Math.floor(random() * (PAGE - length + 1))
      await handle.write(noise(length), 0, length, page * PAGE + offset)
    }
  }
  await handle.close()
  return { base, next }
}

async function sameBytes(a: string, b: string): Promise<boolean> {
  return runMeasured('cmp', ['-s', a, b]).then(
    () => true,
    () => false,
  )
}

// ---------------------------------------------------------------- one case

interface NativeSample {
  encode_s: number
  decode_s: number
  delta_bytes: number
  peak_rss_mib: number | undefined
  verified: boolean
}

async function native(
  tool: 'xdelta3' | 'zstd',
  base: string,
  next: string,
  dir: string,
): Promise<NativeSample> {
  const delta = join(dir, `${tool}.delta`)
  const out = join(dir, `${tool}.out`)
  // xdelta3 has no threads; zstd gets as many as Sustain's pool.
  const encodeArgs =
    tool === 'xdelta3'
      ? ['-e', '-f', '-s', base, next, delta]
      : ['-q', '-f', `-T${THREADS}`, '--long=31', `--patch-from=${base}`, next, '-o', delta]
  const decodeArgs =
    tool === 'xdelta3'
      ? ['-d', '-f', '-s', base, delta, out]
      : ['-q', '-f', '-d', '--long=31', `--patch-from=${base}`, delta, '-o', out]
  const encode = await runMeasured(tool, encodeArgs)
  const decode = await runMeasured(tool, decodeArgs)
  const sample = {
    encode_s: encode.seconds,
    decode_s: decode.seconds,
    delta_bytes: (await stat(delta)).size,
    peak_rss_mib: maxOf(encode.peak_rss_mib, decode.peak_rss_mib),
    verified: await sameBytes(next, out),
  }
  await rm(out, { force: true })
  await rm(delta, { force: true })
  return sample
}

interface SustainSample {
  encode_s: number
  encode_warm_s: number
  restore_s: number
  restore_warm_s: number
  delta_bytes: number
  peak_rss_mib: number
  verified: boolean
}

async function sustain(base: string, next: string, dir: string): Promise<SustainSample> {
  const delta = join(dir, 'sustain.delta')
  const out = join(dir, 'sustain.out')
  const encode = await runChild(['diff', base, next, delta])
  const restore = await runChild(['apply', base, delta, out])
  const sample = {
    encode_s: encode.pool_start_s + encode.seconds,
    encode_warm_s: encode.seconds,
    restore_s: restore.pool_start_s + restore.seconds,
    restore_warm_s: restore.seconds,
    delta_bytes: encode.delta_bytes,
    peak_rss_mib: Math.max(encode.peak_rss_mib, restore.peak_rss_mib),
    verified: await sameBytes(next, out),
  }
  await rm(out, { force: true })
  await rm(delta, { force: true })
  return sample
}

function maxOf(a: number | undefined, b: number | undefined): number | undefined {
  if (a === undefined || b === undefined) return a ?? b
  return Math.max(a, b)
}

function summarizeNative(samples: NativeSample[]): NativeResult {
  return {
    encode_s: spread(samples.map((s) => s.encode_s)),
    decode_s: spread(samples.map((s) => s.decode_s)),
    delta_bytes: samples[0]!.delta_bytes,
    peak_rss_mib: samples.some((s) => s.peak_rss_mib === undefined)
      ? null
      : Math.round(Math.max(...samples.map((s) => s.peak_rss_mib!)) * 10) / 10,
    verified: samples.every((s) => s.verified),
  }
}

function summarizeSustain(samples: SustainSample[]): SustainResult {
  return {
    encode_s: spread(samples.map((s) => s.encode_s)),
    encode_warm_s: spread(samples.map((s) => s.encode_warm_s)),
    restore_s: spread(samples.map((s) => s.restore_s)),
    restore_warm_s: spread(samples.map((s) => s.restore_warm_s)),
    // The largest of the rounds: a delta file's size varies by a few bytes (its header), never more.
    delta_bytes: Math.max(...samples.map((s) => s.delta_bytes)),
    peak_rss_mib: Math.round(Math.max(...samples.map((s) => s.peak_rss_mib)) * 10) / 10,
    verified: samples.every((s) => s.verified),
  }
}

async function runCase(c: Case, rounds: number): Promise<SnapshotCaseResult> {
  const dir = join(TMP, c.name)
  await rm(dir, { recursive: true, force: true })
  await mkdir(dir, { recursive: true })
  try {
    process.stderr.write(`${c.name}: preparing inputs\n`)
    const { base, next } = await makeInputs(c, dir)
    const load_before = Math.round(loadavg()[0]! * 100) / 100
    const tools = c.natives ? (['sustain', 'xdelta3', 'zstd'] as const) : (['sustain'] as const)
    const samples = {
      sustain: [] as SustainSample[],
      xdelta3: [] as NativeSample[],
      zstd: [] as NativeSample[],
    }
    for (let round = 0; round < rounds; round++) {
      for (const tool of rotation(tools, round)) {
        process.stderr.write(
          `${c.name}: round ${round + 1}/${rounds} ${tool} (load ${loadavg()[0]!.toFixed(2)})\n`,
        )
        if (tool === 'sustain') samples.sustain.push(await sustain(base, next, dir))
        else samples[tool].push(await native(tool, base, next, dir))
      }
    }
    return {
      name: c.name,
      image_mib: c.image_mib,
      changed_pct: c.changed_pct,
      kind: c.kind,
      load_1m: [load_before, Math.round(loadavg()[0]! * 100) / 100],
      sustain: summarizeSustain(samples.sustain),
      xdelta3: c.natives ? summarizeNative(samples.xdelta3) : null,
      zstd: c.natives ? summarizeNative(samples.zstd) : null,
    }
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

// ---------------------------------------------------------------- main

async function main(): Promise<void> {
  const argv = process.argv.slice(2)
  if (argv[0] === '--child') return child(argv.slice(1))
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: 'boolean', default: false },
      rounds: { type: 'string', default: '5' },
      only: { type: 'string' },
    },
  })
  const rounds = Number(values.rounds)
  const cases = (values.quick ? QUICK : FULL).filter((c) => !values.only || c.name === values.only)
  if (cases.length === 0)
    throw new Error(`no case named ${values.only}; cases: ${FULL.map((c) => c.name).join(', ')}`)
  const command = ['npm run bench:snapshot --', ...argv].join(' ').replace(/ --$/, '')
  const finish = startRun(command, rounds)
  const results: SnapshotCaseResult[] = []
  try {
    for (const c of cases) results.push(await runCase(c, rounds))
  } finally {
    await rm(TMP, { recursive: true, force: true })
  }
  const run: SnapshotRun & RunMeta = {
    quick: values.quick ?? false,
    threads: THREADS,
    cases: results,
    ...finish(),
  }
  await keepRun('snapshot.json', run)
  await renderResults()
  process.stdout.write(`${JSON.stringify(run, null, 2)}\n`)
}

await main()
