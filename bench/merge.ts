/**
 * Merge benchmark: the built-in mbox helper on spools of 10, 100 and 500 MiB (`--quick`: 10 and 100).
 * Each side holds SIZE MiB in 20 mailboxes: 80% of the messages are common (delivered before the
 * fork), 20% arrived on that side after it. Timed: `archive` on the loser plus `merge` into the winner
 * (each mailbox rewritten atomically with fsync). Peer figure on the same data: naive concatenation of
 * both spools (`cat` per mailbox + `sync`), which keeps every duplicate and orders nothing.
 * `npm run bench:merge [-- --quick]`: prints JSON, writes bench/results/merge.json and the `## Merge`
 * section of bench/RESULTS.md.
 */
import { execFile } from 'node:child_process'
import { once } from 'node:events'
import { createReadStream, createWriteStream } from 'node:fs'
import { mkdir, mkdtemp, readdir, rm, stat } from 'node:fs/promises'
import { cpus, tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { finished } from 'node:stream/promises'
import { promisify } from 'node:util'
import { mboxRecord } from '../helpers/mbox/format.ts'
import { archiveMboxSpool, mergeMboxSpool } from '../helpers/mbox/spool.ts'
import { writeFileAtomic } from '../lib/atomic-write.ts'
import { markdownTable, replaceSection } from './lib/results-md.ts'

const run = promisify(execFile)
const ROOT = resolve(import.meta.dirname, '..')
const quick = process.argv.includes('--quick')
const SIZES_MIB = quick ? [10, 100] : [10, 100, 500]
const MAILBOXES = 20
const COMMON_SHARE = 0.8
const FORK_MS = Date.UTC(2026, 0, 15, 12, 0, 0)
const MIB = 1024 * 1024

/** Deterministic PRNG (xorshift32): the same spools on every run. */
function prng(seed: number): () => number {
  let x = seed >>> 0 || 1
  return () => {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    return (x >>> 0) / 2 ** 32
  }
}

const LINE = 'Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt.\n'

function message(side: string, n: number, time_ms: number, random: () => number): Buffer {
  const size = 2048 + Math.floor(random() * 30 * 1024) // 2-32 KiB, mean ~17 KiB
  const body = LINE.repeat(Math.ceil(size / LINE.length))
  const from_line = random() < 0.02 ? 'From the body, quoted on disk\n' : ''
  const text = `Message-ID: <${side}-${n}@bench.example>\nFrom: s${n}@example.net\nSubject: ${side} ${n}\n\n${from_line}${body}`
  return mboxRecord(`s${n}@example.net`, new Date(time_ms), text)
}

/** Writes both spools: `size_mib` per side, common history then each side's own messages. */
async function makeSpools(
  dir: string,
  size_mib: number,
): Promise<{ messages: number; loser_after_fork: number }> {
  const random = prng(size_mib)
  const winner = join(dir, 'winner')
  const loser = join(dir, 'loser')
  await mkdir(winner, { recursive: true })
  await mkdir(loser, { recursive: true })
  const per_box = (size_mib * MIB) / MAILBOXES
  let messages = 0
  let loser_after_fork = 0
  for (let box = 0; box < MAILBOXES; box++) {
    const w = createWriteStream(join(winner, `user${box}`))
    const l = createWriteStream(join(loser, `user${box}`))
    let written = 0
    let t = FORK_MS - 30 * 86_400_000
    for (let n = 0; written < per_box * COMMON_SHARE; n++) {
      t += 1000 + Math.floor(random() * 60_000)
      const record = message(`c${box}`, n, Math.min(t, FORK_MS - 120_000), random)
      if (!w.write(record)) await once(w, 'drain')
      if (!l.write(record)) await once(l, 'drain')
      written += record.length
      messages++
    }
    for (const [side, out] of [
      ['w', w],
      ['l', l],
    ] as const) {
      let side_written = written
      let ts = FORK_MS + 1000
      for (let n = 0; side_written < per_box; n++) {
        ts += 1000 + Math.floor(random() * 10_000)
        const record = message(`${side}${box}`, n, ts, random)
        if (!out.write(record)) await once(out, 'drain')
        side_written += record.length
        messages++
        if (side === 'l') loser_after_fork++
      }
      out.end()
      await finished(out)
    }
  }
  return { messages, loser_after_fork }
}

async function spoolBytes(dir: string): Promise<number> {
  let total = 0
  for (const name of await readdir(dir)) total += (await stat(join(dir, name))).size
  return total
}

interface Point {
  spool_mib: number
  spool_bytes: number
  merge_s: number
  archive_s: number
  merge_only_s: number
  archive_bytes: number
  added: number
  duplicates: number
  naive_cat_s: number
}

async function measure(size_mib: number): Promise<Point> {
  const dir = await mkdtemp(join(tmpdir(), 'sustain-bench-merge-'))
  try {
    const made = await makeSpools(dir, size_mib)
    const spool_bytes = await spoolBytes(join(dir, 'winner'))

    // Peer: concatenate both sides' mailboxes (duplicates kept), flushed to disk like the merge.
    await mkdir(join(dir, 'cat'))
    const cat_started = performance.now()
    for (let box = 0; box < MAILBOXES; box++) {
      const name = `user${box}`
      await run('sh', [
        '-c',
        'cat "$1" "$2" > "$3" && sync "$3"',
        'sh',
        join(dir, 'winner', name),
        join(dir, 'loser', name),
        join(dir, 'cat', name),
      ])
    }
    const naive_cat_s = (performance.now() - cat_started) / 1000

    const archive_path = join(dir, 'archive')
    const started = performance.now()
    const out = createWriteStream(archive_path)
    await archiveMboxSpool({ spool_dir: join(dir, 'loser'), since_ms: FORK_MS, out })
    out.end()
    await finished(out)
    const archived = performance.now()
    const stats = await mergeMboxSpool({
      spool_dir: join(dir, 'winner'),
      input: createReadStream(archive_path, { highWaterMark: 4 * MIB }),
    })
    const done = performance.now()
    const expected_added = made.loser_after_fork
    if (stats.added !== expected_added) {
      throw new Error(`merge added ${stats.added} messages, the loser had ${expected_added} after the fork`)
    }
    return {
      spool_mib: size_mib,
      spool_bytes,
      merge_s: round((done - started) / 1000),
      archive_s: round((archived - started) / 1000),
      merge_only_s: round((done - archived) / 1000),
      archive_bytes: (await stat(archive_path)).size,
      added: stats.added,
      duplicates: stats.duplicates,
      naive_cat_s: round(naive_cat_s),
    }
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

const round = (x: number, digits = 3) => Number(x.toFixed(digits))

const points: Point[] = []
for (const size of SIZES_MIB) {
  const point = await measure(size)
  points.push(point)
  process.stderr.write(
    `merge ${size} MiB: ${point.merge_s} s (archive ${point.archive_s} s), cat ${point.naive_cat_s} s\n`,
  )
}
const largest = points[points.length - 1]!
const mb_per_s = round(largest.spool_bytes / 1e6 / largest.merge_s, 1)
const peer_mb_per_s = round(largest.spool_bytes / 1e6 / largest.naive_cat_s, 1)
// Linear: seconds per MiB at the largest size over that at 100 MiB (1.0 = exactly linear).
const per_mib = (p: Point) => p.merge_s / p.spool_mib
const reference = points.find((p) => p.spool_mib === 100) ?? points[0]!
const linearity = round(per_mib(largest) / per_mib(reference), 2)
const results = {
  benchmark: 'merge',
  generated_at: new Date().toISOString(),
  quick,
  machine: { cpus: cpus().length, cpu_model: cpus()[0]?.model ?? 'unknown', node: process.version },
  setup: {
    mailboxes: MAILBOXES,
    common_share: COMMON_SHARE,
    note: 'per side: spool_mib of mbox; 80% common before the fork, 20% each side after; merge_s = archive on the loser + merge into the winner (fsync per mailbox)',
  },
  points,
  mb_per_s,
  linearity_vs_100_mib: linearity,
  target: { mb_per_s: 100, linear: true },
  peer: {
    name: 'naive concatenation (cat of both spools per mailbox + sync; keeps duplicates, no order)',
    points: points.map((p) => ({ spool_mib: p.spool_mib, merge_s: p.naive_cat_s })),
    mb_per_s: peer_mb_per_s,
  },
}
console.log(JSON.stringify(results, null, 2))
await mkdir(join(ROOT, 'bench', 'results'), { recursive: true })
await writeFileAtomic(join(ROOT, 'bench', 'results', 'merge.json'), `${JSON.stringify(results, null, 2)}\n`)
const table = markdownTable(
  [
    'spool (MiB per side)',
    'merge s (archive + merge)',
    'archive s',
    'merge s',
    'MB/s',
    'messages added',
    'peer: cat s',
  ],
  points.map((p) => [
    p.spool_mib,
    p.merge_s,
    p.archive_s,
    p.merge_only_s,
    round(p.spool_bytes / 1e6 / p.merge_s, 1),
    p.added,
    p.naive_cat_s,
  ]),
)
await replaceSection(
  join(ROOT, 'bench', 'RESULTS.md'),
  '## Merge',
  [
    `\`npm run bench:merge${quick ? ' -- --quick' : ''}\`, ${results.generated_at}, ${results.machine.cpus} CPUs (${results.machine.cpu_model}).`,
    'Built-in mbox helper: each side holds the spool size in 20 mailboxes, 80% common history, 20% received',
    'after the fork; timed: `archive` on the loser + `merge` into the winner (dedupe by Message-ID, date order,',
    'each mailbox rewritten atomically with fsync). Peer: `cat` of both spools + `sync` (no dedupe, no order).',
    '',
    table,
    '',
    `Rate at the largest size: **${mb_per_s} MB/s** (target >= 100 MB/s); peer \`cat\`: ${peer_mb_per_s} MB/s.`,
    `Linearity: seconds per MiB at ${largest.spool_mib} MiB / at ${reference.spool_mib} MiB = ${linearity} (1.0 = linear).`,
  ].join('\n'),
)
