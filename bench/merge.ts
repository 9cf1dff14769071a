/**
 * Merge benchmark: the built-in mbox helper on spools of 10, 100 and 500 MiB (`--quick`: 10 and 100),
 * and at 100 MiB with the loser's archive overlapping the winner's mailboxes by 0 %, 50 % and 100 %.
 * Each side holds SIZE MiB in 20 mailboxes: 80% of the messages are common (delivered before the
 * fork), 20% arrived after it; of the loser's, the overlap share was delivered to the winner too (a
 * client that retried on the other side), so the merge must find them as duplicates. Timed: `archive`
 * on the loser plus `merge` into the winner (each mailbox rewritten atomically with fsync). Peer, on the
 * same data: naive concatenation of both spools (`cat` per mailbox + `sync`), which keeps every
 * duplicate and orders nothing. Each point runs `--rounds` times (default 5), merge and peer taking
 * turns to go first, on fresh copies of the spools.
 * `npm run bench:merge [-- --quick] [--rounds N]`: appends the run to bench/results/merge.json and
 * regenerates bench/RESULTS.md.
 */
import { execFile } from 'node:child_process'
import { once } from 'node:events'
import { createReadStream, createWriteStream } from 'node:fs'
import { mkdir, mkdtemp, readdir, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { finished } from 'node:stream/promises'
import { parseArgs, promisify } from 'node:util'
import { mboxRecord } from '../helpers/mbox/format.ts'
import { archiveMboxSpool, mergeMboxSpool } from '../helpers/mbox/spool.ts'
import { keepRun } from './lib/results-file.ts'
import { type RunMeta, startRun } from './lib/run-meta.ts'
import { rotation, spread } from './lib/stats.ts'
import type { MergePoint, MergeRun } from './render/merge.ts'
import { renderResults } from './render/results-md.ts'

const run = promisify(execFile)
const { values: args } = parseArgs({
  options: { quick: { type: 'boolean', default: false }, rounds: { type: 'string', default: '5' } },
})
const quick = args.quick ?? false
const ROUNDS = Number(args.rounds)
const SIZES_MIB = quick ? [10, 100] : [10, 100, 500]
const OVERLAPS = [0, 0.5, 1]
const OVERLAP_SIZE_MIB = 100
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

interface Spools {
  messages: number
  loser_after_fork: number
  /** Of the loser's messages after the fork, how many the winner also holds. */
  shared: number
}

/**
 * Writes both spools: `size_mib` per side, common history then each side's own messages in one
 * timeline; `overlap` of the loser's own messages were delivered to the winner as well.
 */
async function makeSpools(dir: string, size_mib: number, overlap: number): Promise<Spools> {
  const random = prng(size_mib * 10 + Math.round(overlap * 4))
  const winner = join(dir, 'winner')
  const loser = join(dir, 'loser')
  await mkdir(winner, { recursive: true })
  await mkdir(loser, { recursive: true })
  const per_box = (size_mib * MIB) / MAILBOXES
  const made: Spools = { messages: 0, loser_after_fork: 0, shared: 0 }
  for (let box = 0; box < MAILBOXES; box++) {
    const w = createWriteStream(join(winner, `user${box}`))
    const l = createWriteStream(join(loser, `user${box}`))
    const write = async (out: typeof w, record: Buffer) => {
      if (!out.write(record)) await once(out, 'drain')
    }
    let written = 0
    let t = FORK_MS - 30 * 86_400_000
    for (let n = 0; written < per_box * COMMON_SHARE; n++) {
      t += 1000 + Math.floor(random() * 60_000)
      const record = message(`c${box}`, n, Math.min(t, FORK_MS - 120_000), random)
      await write(w, record)
      await write(l, record)
      written += record.length
      made.messages++
    }
    let w_written = written
    let l_written = written
    let loser_own = 0
    let ts = FORK_MS + 1000
    for (let n = 0; w_written < per_box || l_written < per_box; n++) {
      ts += 500 + Math.floor(random() * 5_000)
      const to_loser = l_written < per_box && (w_written >= per_box || random() < 0.5)
      if (!to_loser) {
        const record = message(`w${box}`, n, ts, random)
        await write(w, record)
        w_written += record.length
        made.messages++
        continue
      }
      // Evenly spread: the k-th message of the loser is shared when floor((k+1)*overlap) steps up.
      const shared = Math.floor((loser_own + 1) * overlap) > Math.floor(loser_own * overlap)
      loser_own++
      const record = message(shared ? `s${box}` : `l${box}`, n, ts, random)
      await write(l, record)
      l_written += record.length
      made.loser_after_fork++
      made.messages++
      if (shared) {
        await write(w, record)
        w_written += record.length
        made.shared++
      }
    }
    for (const out of [w, l]) {
      out.end()
      await finished(out)
    }
  }
  return made
}

async function spoolBytes(dir: string): Promise<number> {
  let total = 0
  for (const name of await readdir(dir)) total += (await stat(join(dir, name))).size
  return total
}

interface Sample {
  merge_s: number
  archive_s: number
  merge_only_s: number
  naive_cat_s: number
  archive_bytes: number
}

async function mergeOnce(dir: string, made: Spools, work: string): Promise<Omit<Sample, 'naive_cat_s'>> {
  await run('cp', ['-a', join(dir, 'winner'), join(work, 'winner')])
  const archive_path = join(work, 'archive')
  const started = performance.now()
  const out = createWriteStream(archive_path)
  await archiveMboxSpool({ spool_dir: join(dir, 'loser'), since_ms: FORK_MS, out })
  out.end()
  await finished(out)
  const archived = performance.now()
  const stats = await mergeMboxSpool({
    spool_dir: join(work, 'winner'),
    input: createReadStream(archive_path, { highWaterMark: 4 * MIB }),
  })
  const done = performance.now()
  // The bench's own count, from how it made the spools, judges the helper's.
  if (stats.added !== made.loser_after_fork - made.shared || stats.duplicates !== made.shared) {
    throw new Error(
      `merge added ${stats.added} and found ${stats.duplicates} duplicates; the loser had ${made.loser_after_fork} after the fork, ${made.shared} of them also in the winner`,
    )
  }
  const archive_bytes = (await stat(archive_path)).size
  await rm(join(work, 'winner'), { recursive: true, force: true })
  await rm(archive_path, { force: true })
  return {
    merge_s: (done - started) / 1000,
    archive_s: (archived - started) / 1000,
    merge_only_s: (done - archived) / 1000,
    archive_bytes,
  }
}

/** Peer: concatenate both sides' mailboxes (duplicates kept), flushed to disk like the merge. */
async function catOnce(dir: string, work: string): Promise<number> {
  await mkdir(join(work, 'cat'))
  const started = performance.now()
  for (let box = 0; box < MAILBOXES; box++) {
    const name = `user${box}`
    await run('sh', [
      '-c',
      'cat "$1" "$2" > "$3" && sync "$3"',
      'sh',
      join(dir, 'winner', name),
      join(dir, 'loser', name),
      join(work, 'cat', name),
    ])
  }
  const seconds = (performance.now() - started) / 1000
  await rm(join(work, 'cat'), { recursive: true, force: true })
  return seconds
}

async function measure(size_mib: number, overlap: number): Promise<MergePoint> {
  const dir = await mkdtemp(join(tmpdir(), 'sustain-bench-merge-'))
  try {
    const made = await makeSpools(dir, size_mib, overlap)
    const spool_bytes = await spoolBytes(join(dir, 'winner'))
    const work = join(dir, 'work')
    await mkdir(work)
    const samples: Sample[] = []
    for (let r = 0; r < ROUNDS; r++) {
      const sample: Partial<Sample> = {}
      for (const contender of rotation(['merge', 'cat'] as const, r)) {
        if (contender === 'merge') Object.assign(sample, await mergeOnce(dir, made, work))
        else sample.naive_cat_s = await catOnce(dir, work)
      }
      samples.push(sample as Sample)
    }
    const of = (key: keyof Sample) => spread(samples.map((s) => s[key]))
    return {
      spool_mib: size_mib,
      overlap,
      spool_bytes,
      merge_s: of('merge_s'),
      archive_s: of('archive_s'),
      merge_only_s: of('merge_only_s'),
      naive_cat_s: of('naive_cat_s'),
      archive_bytes: samples[0]!.archive_bytes,
      added: made.loser_after_fork - made.shared,
      duplicates: made.shared,
    }
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

const plan: [number, number][] = [
  ...SIZES_MIB.map((size): [number, number] => [size, 0]),
  ...OVERLAPS.filter((o) => o > 0).map((o): [number, number] => [OVERLAP_SIZE_MIB, o]),
]
const finish = startRun(
  ['npm run bench:merge --', ...process.argv.slice(2)].join(' ').replace(/ --$/, ''),
  ROUNDS,
)
const points: MergePoint[] = []
for (const [size, overlap] of plan) {
  const point = await measure(size, overlap)
  points.push(point)
  process.stderr.write(
    `merge ${size} MiB, overlap ${overlap * 100} %: ${point.merge_s.median} s (archive ${point.archive_s.median} s), cat ${point.naive_cat_s.median} s\n`,
  )
}
const result: MergeRun & RunMeta = {
  quick,
  mailboxes: MAILBOXES,
  common_share: COMMON_SHARE,
  points,
  target: { mb_per_s: 100, linear: true },
  ...finish(),
}
await keepRun('merge.json', result)
await renderResults()
console.log(JSON.stringify(result, null, 2))
