/**
 * Snapshot engine benchmark: Sustain (xdelta3-wasm, chunked, worker threads) beside native `xdelta3 -e -s`
 * and `zstd --patch-from`, on the same files. `npm run bench:snapshot [-- --quick]`.
 * Writes bench/results/snapshot.json and the "## Snapshot engine" section of bench/RESULTS.md.
 * Sustain runs in a child process (this file with --child) so its peak RSS is its own.
 */
import { spawn } from 'node:child_process'
import { randomFillSync } from 'node:crypto'
import { mkdir, open, readFile, rm, stat } from 'node:fs/promises'
import { availableParallelism, loadavg } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { writeFileAtomic } from '../lib/atomic-write.ts'
import { runMeasured, selfPeakRssMib } from './lib/process-stats.ts'
import { markdownTable, replaceSection } from './lib/results-md.ts'

const HERE = dirname(fileURLToPath(import.meta.url))
const ROOT = join(HERE, '..')
const TMP = join(ROOT, '.tmp', 'bench-snapshot')
const MIB = 1024 * 1024
const PAGE = 4096

interface Case {
  name: string
  image_mib: number
  changed_pct: number
  kind: 'pages' | 'append'
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
  { name: '256MiB-append-1pct', image_mib: 256, changed_pct: 1, kind: 'append', natives: true },
  // Memory does not grow with the image: encode + restore of 4 GiB under 256 MiB RSS (Sustain only).
  { name: '4096MiB-pages-0.1pct', image_mib: 4096, changed_pct: 0.1, kind: 'pages', natives: false },
]
const QUICK = FULL.filter((c) => c.name === '256MiB-pages-1pct')

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

async function runChild(args: string[]): Promise<ChildResult> {
  const proc = spawn(
    process.execPath,
    ['--import', 'tsx', fileURLToPath(import.meta.url), '--child', ...args],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
      cwd: ROOT,
    },
  )
  let stdout = ''
  proc.stdout.on('data', (data: Buffer) => {
    stdout += data.toString()
  })
  const code = await new Promise<number | null>((resolve) => proc.once('close', resolve))
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

async function writeRandom(path: string, bytes: number): Promise<void> {
  const handle = await open(path, 'w')
  const block = Buffer.allocUnsafe(16 * MIB)
  for (let at = 0; at < bytes; at += block.length) {
    randomFillSync(block)
    await handle.write(block, 0, Math.min(block.length, bytes - at), at)
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
  await writeRandom(base, c.image_mib * MIB)
  await copyFile(base, next)
  const pages = (c.image_mib * MIB) / PAGE
  const changed = Math.round((pages * c.changed_pct) / 100)
  const picked = new Set<number>()
  while (picked.size < changed) picked.add(Math.floor(random() * pages))
  const handle = await open(next, 'r+')
  // Each changed page gets a random run of random length at a random place: from a few bytes to all 4 KiB.
  for (const page of picked) {
    const length = 1 + Math.floor(random() * PAGE)
    const offset = Math.floor(random() * (PAGE - length + 1))
    await handle.write(randomFillSync(Buffer.allocUnsafe(length)), 0, length, page * PAGE + offset)
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

interface NativeResult {
  encode_s: number
  delta_bytes: number
  decode_s: number
  peak_rss_mib: number | undefined
  verified: boolean
}

async function native(
  tool: 'xdelta3' | 'zstd',
  base: string,
  next: string,
  dir: string,
): Promise<NativeResult> {
  const delta = join(dir, `${tool}.delta`)
  const out = join(dir, `${tool}.out`)
  const encodeArgs =
    tool === 'xdelta3'
      ? ['-e', '-f', '-s', base, next, delta]
      : ['-q', '-f', '--long=31', `--patch-from=${base}`, next, '-o', delta]
  const decodeArgs =
    tool === 'xdelta3'
      ? ['-d', '-f', '-s', base, delta, out]
      : ['-q', '-f', '-d', '--long=31', `--patch-from=${base}`, delta, '-o', out]
  const encode = await runMeasured(tool, encodeArgs)
  const decode = await runMeasured(tool, decodeArgs)
  const result = {
    encode_s: round(encode.seconds),
    delta_bytes: (await stat(delta)).size,
    decode_s: round(decode.seconds),
    peak_rss_mib: maxOf(encode.peak_rss_mib, decode.peak_rss_mib),
    verified: await sameBytes(next, out),
  }
  await rm(out, { force: true })
  await rm(delta, { force: true })
  return result
}

function round(x: number, digits = 3): number {
  return Number(x.toFixed(digits))
}

function maxOf(a: number | undefined, b: number | undefined): number | undefined {
  if (a === undefined || b === undefined) return a ?? b
  return round(Math.max(a, b), 1)
}

async function runCase(c: Case) {
  const dir = join(TMP, c.name)
  await rm(dir, { recursive: true, force: true })
  await mkdir(dir, { recursive: true })
  try {
    process.stderr.write(`${c.name}: preparing inputs\n`)
    const { base, next } = await makeInputs(c, dir)
    // Other work on the machine slows both sides; the 1-minute load average is kept beside each case.
    const load_before = round(loadavg()[0]!, 2)
    process.stderr.write(`${c.name}: sustain (load ${load_before})\n`)
    const delta = join(dir, 'sustain.delta')
    const out = join(dir, 'sustain.out')
    const encode = await runChild(['diff', base, next, delta])
    const restore = await runChild(['apply', base, delta, out])
    const sustain = {
      encode_s: round(encode.seconds),
      delta_bytes: encode.delta_bytes,
      restore_s: round(restore.seconds),
      peak_rss_mib: round(Math.max(encode.peak_rss_mib, restore.peak_rss_mib), 1),
      verified: await sameBytes(next, out),
      pool_start_s: round(encode.pool_start_s),
    }
    await rm(out, { force: true })
    let xdelta3: NativeResult | null = null
    let zstd: NativeResult | null = null
    if (c.natives) {
      process.stderr.write(`${c.name}: xdelta3\n`)
      xdelta3 = await native('xdelta3', base, next, dir)
      process.stderr.write(`${c.name}: zstd\n`)
      zstd = await native('zstd', base, next, dir)
    }
    const result = {
      name: c.name,
      image_mib: c.image_mib,
      changed_pct: c.changed_pct,
      load_avg_1m: [load_before, round(loadavg()[0]!, 2)],
      sustain,
      xdelta3,
      zstd,
    }
    process.stderr.write(`${JSON.stringify(result)}\n`)
    return result
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

// ---------------------------------------------------------------- report

type Result = Awaited<ReturnType<typeof runCase>>

function report(results: Result[], quick: boolean): string {
  const rows = results.flatMap((r) => {
    const size = r.image_mib * MIB
    const mbps = (s: number) => (s > 0 ? Math.round(size / 1e6 / s) : '-')
    const load = r.load_avg_1m ? r.load_avg_1m.join('-') : '-'
    const rows: (string | number | boolean)[][] = [
      [
        r.name,
        'sustain',
        r.sustain.encode_s,
        r.sustain.delta_bytes,
        r.sustain.restore_s,
        mbps(r.sustain.restore_s),
        r.sustain.peak_rss_mib,
        r.sustain.verified,
        load,
      ],
    ]
    for (const [tool, n] of [
      ['xdelta3', r.xdelta3],
      ['zstd', r.zstd],
    ] as const) {
      if (!n) continue
      rows.push([
        r.name,
        tool,
        n.encode_s,
        n.delta_bytes,
        n.decode_s,
        mbps(n.decode_s),
        n.peak_rss_mib ?? '-',
        n.verified,
        load,
      ])
    }
    return rows
  })
  const table = markdownTable(
    [
      'case',
      'tool',
      'encode s',
      'delta bytes',
      'restore s',
      'restore MB/s',
      'peak RSS MiB',
      'verified',
      'load 1m',
    ],
    rows,
  )
  const lines = [
    `Run ${new Date().toISOString()}${quick ? ' (--quick)' : ''} on ${availableParallelism()} cores; \`npm run bench:snapshot\`.`,
    'Images are random bytes; "pages" cases overwrite a random run (1 B to 4 KiB) inside the given share of',
    '4 KiB pages at random places; "append" is mbox-like text growing by the given share. Sustain = delta file',
    'of `sustain image diff` / `image apply` (1 MiB chunks, xdelta3-wasm, worker threads), measured in a child',
    'process with its worker pool already started (start-up is `pool_start_s` in the JSON), restore without fsync',
    'like the native tools; native tools via `/usr/bin/time -v`. Restores verified byte for byte against the input.',
    '"load 1m" is the 1-minute load average before and after the case (2 cores shared with other work).',
    '',
    table,
    '',
    ...targets(results),
  ]
  return lines.join('\n')
}

function targets(results: Result[]): string[] {
  const out: string[] = ['Targets:']
  const key = results.find((r) => r.name === '256MiB-pages-1pct')
  if (key?.xdelta3) {
    const speedup = key.xdelta3.encode_s / key.sustain.encode_s
    const ratio = key.sustain.delta_bytes / key.xdelta3.delta_bytes
    out.push(
      `- 256 MiB / 1 %: encode ${speedup.toFixed(2)}x faster than xdelta3 (target >= 2x): ${speedup >= 2 ? 'met' : 'NOT met'}`,
    )
    out.push(
      `- 256 MiB / 1 %: delta ${ratio.toFixed(3)}x xdelta3's bytes (target <= 1.1x): ${ratio <= 1.1 ? 'met' : 'NOT met'}`,
    )
  }
  // The restore target is about the comparison cases; the 4 GiB case is there for memory.
  const restoreRates = results
    .filter((r) => r.xdelta3 !== null)
    .map((r) => (r.image_mib * MIB) / 1e6 / r.sustain.restore_s)
  const slowest = Math.min(...restoreRates)
  out.push(
    `- restore: slowest case ${Math.round(slowest)} MB/s (target >= 500): ${slowest >= 500 ? 'met' : 'NOT met'}`,
  )
  for (const r of results.filter((r) => r.xdelta3 === null)) {
    const rate = (r.image_mib * MIB) / 1e6 / r.sustain.restore_s
    out.push(`- restore ${r.name} (memory case, no peers): ${Math.round(rate)} MB/s`)
  }
  for (const image_mib of [1024, 4096]) {
    const big = results.filter((r) => r.image_mib === image_mib)
    if (big.length === 0) continue
    const peak = Math.max(...big.map((r) => r.sustain.peak_rss_mib))
    out.push(
      `- peak RSS on ${image_mib / 1024} GiB cases: ${peak} MiB (target < 256): ${peak < 256 ? 'met' : 'NOT met'}`,
    )
  }
  return out
}

async function readResults(path: string): Promise<Result[]> {
  return readFile(path, 'utf8').then(
    (text) => JSON.parse(text) as Result[],
    () => [],
  )
}

/** Earlier results with the re-run cases replaced (or added), in the order of FULL. */
function mergeCase(earlier: Result[], fresh: Result[]): Result[] {
  const byName = new Map(earlier.map((r) => [r.name, r]))
  for (const r of fresh) byName.set(r.name, r)
  const order = (name: string) => {
    const i = FULL.findIndex((c) => c.name === name)
    return i < 0 ? FULL.length : i
  }
  return [...byName.values()].sort((a, b) => order(a.name) - order(b.name))
}

async function main(): Promise<void> {
  const args = process.argv.slice(2)
  if (args[0] === '--child') return child(args.slice(1))
  const quick = args.includes('--quick')
  // --only NAME runs one case (for tuning); the committed results come from a full run.
  const only = args.includes('--only') ? args[args.indexOf('--only') + 1] : undefined
  const results: Result[] = []
  try {
    for (const c of quick ? QUICK : FULL) if (!only || c.name === only) results.push(await runCase(c))
  } finally {
    await rm(TMP, { recursive: true, force: true })
  }
  await mkdir(join(HERE, 'results'), { recursive: true })
  const jsonPath = join(HERE, 'results', 'snapshot.json')
  // --only re-measures one case inside the committed results instead of replacing them.
  const merged = only ? mergeCase(await readResults(jsonPath), results) : results
  await writeFileAtomic(jsonPath, `${JSON.stringify(merged, null, 2)}\n`)
  const text = report(merged, quick)
  await replaceSection(join(HERE, 'RESULTS.md'), '## Snapshot engine', text)
  process.stdout.write(`${text}\n`)
}

await main()
