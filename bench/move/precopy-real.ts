/**
 * One small point of seed 004's experiment with real bytes: real files in a temporary directory, changed
 * on disk by the same seeded update process as the simulation (bench/move/precopy-sim.ts `Updates`, here
 * on the wall clock), sent in the planner's order over a real TCP stream on 127.0.0.1 paced by a
 * wall-clock token bucket, written by a receiver into a second directory. Then the final copy (the
 * "service" frozen: no more changes) and a byte-for-byte comparison of both directories, which trusts
 * nothing the planner or the sender say. The simulation of the same set, seed and parameters runs beside
 * it, so the model's figures can be checked against the real run's.
 */
import { createHash } from 'node:crypto'
import { mkdir, mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises'
import { connect, createServer, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import {
  DEFAULT_TERMINATION,
  type PrecopyUnit,
  precopyOrder,
  type StopReason,
  shouldStop,
  type TerminationPolicy,
} from '../../src/move/precopy-plan.ts'
import {
  type MethodResult,
  runPlanned,
  type SimFile,
  type Transfer,
  Updates,
  untransferred,
} from './precopy-sim.ts'

export interface RealOptions {
  mbps: number
  period_s: number
  window_periods: number
  seed: number
  termination: TerminationPolicy
}

export interface RealResult {
  files: number
  set_bytes: number
  precopy_bytes: number
  final_bytes: number
  /** Bytes the receiver got (payload, both phases): must equal pre-copy + final. */
  received_bytes: number
  rounds: number
  stop: StopReason
  /** Freeze to the receiver's last file written (the final copy, measured). */
  downtime_ms: number
  /** Start to the end of the final copy. */
  total_ms: number
  /** Achieved payload rate over the whole move, against the bucket's rate. */
  achieved_mbps: number
  /** Every destination file equals its source byte for byte at the freeze. */
  identical: boolean
  /** The simulation of the same set, seed and parameters (virtual time). */
  model: MethodResult
}

const HEADER_BYTES = 8
const CHUNK_BYTES = 65_536
/**
 * The bucket's depth (real and simulated alike): four chunks, so a timer that fires late on a loaded
 * machine (a chunk lasts 17 ms at 30 Mbit/s) does not lose the tokens it waited for.
 */
const BUCKET_BYTES = 4 * CHUNK_BYTES

/** A token bucket on the wall clock (the real counterpart of the simulation's). */
class WallBucket {
  private tokens: number
  private at_ms = performance.now()
  constructor(
    private readonly rate_Bps: number,
    private readonly depth_bytes: number,
  ) {
    this.tokens = depth_bytes
  }
  async take(bytes: number): Promise<void> {
    for (;;) {
      const now = performance.now()
      this.tokens = Math.min(this.depth_bytes, this.tokens + ((now - this.at_ms) / 1000) * this.rate_Bps)
      this.at_ms = now
      if (this.tokens >= bytes) {
        this.tokens -= bytes
        return
      }
      // Pacing, not synchronisation: wait for the tokens the next chunk needs.
      await sleep(Math.max(1, ((bytes - this.tokens) / this.rate_Bps) * 1000))
    }
  }
}

/** Receives frames (u32 file index, u32 length, payload) and writes each file whole into `dir`. */
function receiver(dir: string, names: readonly string[]) {
  let received = 0
  let last_written_ms = 0
  let done!: () => void
  let failed!: (e: Error) => void
  const finished = new Promise<void>((resolve, reject) => {
    done = resolve
    failed = reject
  })
  const server = createServer((socket: Socket) => {
    let buf = Buffer.alloc(0)
    let writes = Promise.resolve()
    socket.on('data', (data: Buffer) => {
      buf = Buffer.concat([buf, data])
      while (buf.length >= HEADER_BYTES) {
        const index = buf.readUInt32BE(0)
        const length = buf.readUInt32BE(4)
        if (buf.length < HEADER_BYTES + length) break
        const body = buf.subarray(HEADER_BYTES, HEADER_BYTES + length)
        buf = buf.subarray(HEADER_BYTES + length)
        received += length
        const name = names[index]
        if (name === undefined) {
          failed(new Error(`receiver: frame for file ${index}, not in the set`))
          return
        }
        writes = writes.then(async () => {
          await writeFile(join(dir, name), body)
          last_written_ms = performance.now()
        })
      }
    })
    socket.on('end', () => {
      if (buf.length > 0) failed(new Error(`receiver: ${buf.length} bytes of a cut frame at the end`))
      else writes.then(done, failed)
    })
    socket.on('error', failed)
  })
  return {
    server,
    finished,
    received: () => received,
    lastWrittenMs: () => last_written_ms,
  }
}

/** File i's content with its newest change stamped in: what a change of the "service" writes. */
function content(i: number, size: number, changed_at: number, pattern: Buffer): Buffer {
  const out = Buffer.alloc(size)
  pattern.copy(out, 0, 0, Math.min(size, pattern.length))
  if (size >= 12) {
    out.writeUInt32BE(i, 0)
    out.writeDoubleBE(changed_at, 4)
  }
  return out
}

export async function runPlannedReal(files: readonly SimFile[], o: RealOptions): Promise<RealResult> {
  const model = runPlanned(files, { ...o, bucket_bytes: BUCKET_BYTES })
  const root = await mkdtemp(join(tmpdir(), 'sustain-bench-move-real-'))
  const src = join(root, 'src')
  const dst = join(root, 'dst')
  const names = files.map((f, i) => `${i}-${f.id}`)
  const pattern = createHash('sha512').update(String(o.seed)).digest()
  const big = Buffer.alloc(Math.max(...files.map((f) => f.size_bytes)))
  for (let off = 0; off < big.length; off += pattern.length) pattern.copy(big, off)
  const rx = receiver(dst, names)
  let socket: Socket | undefined
  try {
    await mkdir(src)
    await mkdir(dst)
    for (let i = 0; i < files.length; i++)
      await writeFile(join(src, names[i]!), content(i, files[i]!.size_bytes, -1, big))
    await new Promise<void>((resolve) => rx.server.listen(0, '127.0.0.1', resolve))
    const port = (rx.server.address() as { port: number }).port
    socket = connect(port, '127.0.0.1')
    await new Promise<void>((resolve, reject) => {
      socket!.once('connect', resolve)
      socket!.once('error', reject)
    })
    const s = socket
    const rate = (o.mbps * 1e6) / 8
    const bucket = new WallBucket(rate, BUCKET_BYTES)
    const t0 = performance.now()
    const now_s = () => (performance.now() - t0) / 1000
    const updates = new Updates(files, o.period_s, o.seed, o.window_periods)
    const applied = new Float64Array(files.length).fill(Number.NEGATIVE_INFINITY)
    /** The "service" writes every change due before `t`: the changed files on disk get their new stamp. */
    const applyUpTo = async (t: number) => {
      updates.advance(t)
      for (let i = 0; i < files.length; i++) {
        const at = updates.latest(i, t)
        if (at === applied[i]) continue
        applied[i] = at
        const fh = await open(join(src, names[i]!), 'r+')
        try {
          const stamp = Buffer.alloc(12)
          stamp.writeUInt32BE(i, 0)
          stamp.writeDoubleBE(at, 4)
          if (files[i]!.size_bytes >= 12) await fh.write(stamp, 0, 12, 0)
        } finally {
          await fh.close()
        }
      }
    }
    const sendFile = async (i: number) => {
      const body = await readFile(join(src, names[i]!))
      const frame = Buffer.alloc(HEADER_BYTES)
      frame.writeUInt32BE(i, 0)
      frame.writeUInt32BE(body.length, 4)
      const all = Buffer.concat([frame, body])
      for (let off = 0; off < all.length; off += CHUNK_BYTES) {
        const chunk = all.subarray(off, off + CHUNK_BYTES)
        await bucket.take(chunk.length)
        if (!s.write(chunk)) await new Promise((resolve) => s.once('drain', resolve))
      }
      return body.length
    }
    const tr: Transfer = { sent_at: new Float64Array(files.length).fill(Number.NEGATIVE_INFINITY) }
    const history: number[] = []
    const bytesOf = (idx: number[]) => idx.reduce((sum, i) => sum + files[i]!.size_bytes, 0)
    let sent = 0
    let rounds = 0
    let stop: StopReason
    const image_bytes = bytesOf(files.map((_, i) => i))
    let stopped: StopReason | null = null
    periods: for (;;) {
      const period_end = now_s() + o.period_s
      // Passes within the period, the classic limits asked when one runs out (as in precopy-sim.ts).
      while (now_s() < period_end) {
        const todo = untransferred(files, updates, tr, now_s())
        if (todo.length === 0) break
        const units: (PrecopyUnit & { i: number })[] = todo.map((i) => ({
          i,
          id: files[i]!.id,
          size_bytes: files[i]!.size_bytes,
          read_only: files[i]!.read_only,
          update_probability: updates.estimate(i),
        }))
        let moved = 0
        for (const u of precopyOrder(units)) {
          const at = now_s()
          if (at >= period_end) break
          await applyUpTo(at)
          tr.sent_at[u.i] = at
          const bytes = await sendFile(u.i)
          sent += bytes
          moved += bytes
        }
        if (now_s() >= period_end) break
        const now_left = untransferred(files, updates, tr, now_s())
        stopped = shouldStop(
          {
            untransferred_bytes: history,
            untransferred_units: now_left.length,
            read_only_untransferred_units: now_left.filter((i) => files[i]!.read_only).length,
            rounds,
            sent_bytes: sent,
            image_bytes,
          },
          o.termination,
        )
        if (stopped) {
          rounds++
          stop = stopped
          break periods
        }
        if (moved === 0) break
      }
      const wait_s = period_end - now_s()
      if (wait_s > 0) await sleep(wait_s * 1000)
      rounds++
      const left = untransferred(files, updates, tr, now_s())
      const read_only_left = left.filter((i) => files[i]!.read_only).length
      if (read_only_left === 0) history.push(bytesOf(left))
      const reason = shouldStop(
        {
          untransferred_bytes: history,
          untransferred_units: left.length,
          read_only_untransferred_units: read_only_left,
          rounds,
          sent_bytes: sent,
          image_bytes,
        },
        o.termination,
      )
      if (reason) {
        stop = reason
        break
      }
    }
    // Freeze: the service writes what was due, then nothing more; the final copy sends what is stale.
    const freeze_ms = performance.now()
    const tf = now_s()
    await applyUpTo(tf)
    let final_bytes = 0
    for (const i of untransferred(files, updates, tr, tf)) final_bytes += await sendFile(i)
    s.end()
    await rx.finished
    const end_ms = Math.max(rx.lastWrittenMs(), freeze_ms)
    let identical = true
    for (const name of names) {
      const [a, b] = await Promise.all([
        readFile(join(src, name)),
        readFile(join(dst, name)).catch(() => null),
      ])
      if (!b || !a.equals(b)) identical = false
    }
    const total_ms = end_ms - t0
    return {
      files: files.length,
      set_bytes: bytesOf(files.map((_, i) => i)),
      precopy_bytes: sent,
      final_bytes,
      received_bytes: rx.received(),
      rounds,
      stop,
      downtime_ms: Math.round(end_ms - freeze_ms),
      total_ms: Math.round(total_ms),
      achieved_mbps: Math.round(((sent + final_bytes) * 8) / (total_ms * 100)) / 10,
      identical,
      model,
    }
  } finally {
    socket?.destroy()
    await new Promise<void>((resolve) => rx.server.close(() => resolve()))
    await rm(root, { recursive: true, force: true })
  }
}

/** Seed 004's fixed set cut down: every `every`-th file (the same shares of read-only, 0.2 and 0.8). */
export function thinned(files: readonly SimFile[], every: number): SimFile[] {
  return files.filter((_, i) => i % every === 0)
}

/** The classic "under 50 units" limit, scaled with the set (50 of 11,000 files is 50 x every of the thin set). */
export function scaledTermination(every: number): TerminationPolicy {
  return { ...DEFAULT_TERMINATION, max_dirty_units: Math.max(1, Math.round(50 / every)) }
}
