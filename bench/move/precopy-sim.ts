import {
  DEFAULT_TERMINATION,
  type PrecopyUnit,
  precopyOrder,
  type StopReason,
  shouldStop,
  type TerminationPolicy,
} from '../../src/move/precopy-plan.ts'

/**
 * Seed 004's experiment in simulation (virtual time, one seeded PRNG): a set of files, each updated with
 * its own probability per period, moved over a token-bucket link either by the planner of
 * src/move/precopy-plan.ts (read-only first, then ascending update expectation, re-planned every
 * period, seed 004's termination rule beside the classic limits) or by fixed-order iterative pre-copy
 * (10 rounds, then the final copy). Both runs see exactly the same updates (period k's draws come from
 * a PRNG seeded by (seed, k)).
 */
export interface SimFile {
  id: string
  size_bytes: number
  read_only: boolean
  /** The true update probability per period (the planner only sees its estimate from history). */
  p: number
}

export interface SimOptions {
  mbps: number
  /** Length of one update period (seed 004's monitoring period; not given in the paper). */
  period_s: number
  /** Periods of history the planner estimates probabilities from (observed before the move too). */
  window_periods: number
  /** Token bucket depth (bytes): what the link may send at once after idling. */
  bucket_bytes: number
  seed: number
  termination?: TerminationPolicy
  /** Rounds of the fixed-order method (seed 004 compares with 10). */
  classic_rounds?: number
}

export interface MethodResult {
  precopy_bytes: number
  final_bytes: number
  /** Time of the final copy alone on the link (the service is frozen meanwhile). */
  downtime_s: number
  total_s: number
  rounds: number
  stop: StopReason | 'rounds-done' | 'converged'
}

/** sfc32 seeded from two numbers: a deterministic stream of uniforms in [0, 1). */
function prng(a: number, b: number): () => number {
  let x = a >>> 0
  let y = b >>> 0
  let z = 0x9e3779b9
  let c = 1
  const next = () => {
    const t = (((x + y) | 0) + c) | 0
    c = (c + 1) | 0
    x = y ^ (y >>> 9)
    y = (z + (z << 3)) | 0
    z = (z << 21) | (z >>> 11)
    z = (z + t) | 0
    return (t >>> 0) / 4294967296
  }
  for (let i = 0; i < 12; i++) next()
  return next
}

/** A token bucket in virtual time: `rate` bytes/s, `depth` bytes of burst. */
export class TokenBucket {
  private tokens: number
  private at_s = 0
  constructor(
    private readonly rate_Bps: number,
    private readonly depth_bytes: number,
  ) {
    this.tokens = depth_bytes
  }
  /** Send `bytes` starting no earlier than `start_s`; returns when the last byte has left. */
  send(start_s: number, bytes: number): number {
    const t = Math.max(start_s, this.at_s)
    this.tokens = Math.min(this.depth_bytes, this.tokens + (t - this.at_s) * this.rate_Bps)
    this.at_s = t
    if (bytes <= this.tokens) {
      this.tokens -= bytes
      return t
    }
    const end = t + (bytes - this.tokens) / this.rate_Bps
    this.tokens = 0
    this.at_s = end
    return end
  }
}

/**
 * The files' updates, period by period, identical for every method reading them (period k's draws come
 * from a PRNG seeded by (seed, k)): a file changes at most once per period, with its probability, at a
 * uniform time in it. `latest(i, t)` is the time of file i's newest change before t, for t in the
 * current period (advance() moves the current period forward, never back).
 */
export class Updates {
  /** Newest change before the current period began (-Infinity: none). */
  private readonly before: Float64Array
  /** The change in the current period (NaN: none). */
  private readonly current: Float64Array
  private period = 0
  /** Per period (ring of `window`): which files changed; per file the count over the window. */
  private readonly ring: Uint8Array[]
  private readonly counts: Uint16Array

  constructor(
    private readonly files: readonly SimFile[],
    private readonly period_s: number,
    private readonly seed: number,
    private readonly window: number,
  ) {
    this.before = new Float64Array(files.length).fill(Number.NEGATIVE_INFINITY)
    this.current = new Float64Array(files.length)
    this.ring = Array.from({ length: window }, () => new Uint8Array(files.length))
    this.counts = new Uint16Array(files.length)
    // The history observed before the move: periods -window .. -1 (their times do not matter: nothing
    // was sent yet).
    for (let k = -window; k < 0; k++) {
      this.draw(k)
      this.observe(k)
    }
    this.draw(0)
  }

  private draw(k: number): void {
    const rand = prng(this.seed, k + 1_000_000)
    for (let i = 0; i < this.files.length; i++) {
      const f = this.files[i]!
      const hit = !f.read_only && rand() < f.p
      const at = rand()
      this.current[i] = hit ? (k + at) * this.period_s : Number.NaN
    }
  }

  private observe(k: number): void {
    const slot = this.ring[((k % this.window) + this.window) % this.window]!
    for (let i = 0; i < slot.length; i++) {
      const changed = Number.isNaN(this.current[i]!) ? 0 : 1
      this.counts[i] = this.counts[i]! - slot[i]! + changed
      slot[i] = changed
    }
  }

  /** Make `t_s` fall in the current period. */
  advance(t_s: number): void {
    while ((this.period + 1) * this.period_s <= t_s) {
      // Period over: it joins the window of history, and the next one is drawn.
      this.observe(this.period)
      for (let i = 0; i < this.before.length; i++) {
        const u = this.current[i]!
        if (!Number.isNaN(u)) this.before[i] = u
      }
      this.period++
      this.draw(this.period)
    }
  }

  /** Newest change of file i before `t_s` (in the current period; -Infinity: never). */
  latest(i: number, t_s: number): number {
    const u = this.current[i]!
    return u < t_s ? u : this.before[i]!
  }

  /** The update probability the planner sees: the fraction of the last `window` periods with a change. */
  estimate(i: number): number {
    return this.counts[i]! / this.window
  }
}

export interface Transfer {
  /** Start of each file's newest send (-Infinity: never sent). */
  sent_at: Float64Array
}

/** Files never sent, or changed since their newest send started, at `t_s`. */
export function untransferred(
  files: readonly SimFile[],
  updates: Updates,
  tr: Transfer,
  t_s: number,
): number[] {
  updates.advance(t_s)
  const out: number[] = []
  for (let i = 0; i < files.length; i++) {
    const s = tr.sent_at[i]!
    if (s === Number.NEGATIVE_INFINITY || updates.latest(i, t_s) >= s) out.push(i)
  }
  return out
}

const bytesOf = (files: readonly SimFile[], idx: number[]) =>
  idx.reduce((s, i) => s + files[i]!.size_bytes, 0)

/** The planner of src/move/precopy-plan.ts, re-planning at the start of every pass (see below). */
export function runPlanned(files: readonly SimFile[], o: SimOptions): MethodResult {
  const rate = (o.mbps * 1e6) / 8
  const link = new TokenBucket(rate, o.bucket_bytes)
  const updates = new Updates(files, o.period_s, o.seed, o.window_periods)
  const tr: Transfer = { sent_at: new Float64Array(files.length).fill(Number.NEGATIVE_INFINITY) }
  const image = files.reduce((s, f) => s + f.size_bytes, 0)
  const history: number[] = []
  let t = 0
  let sent = 0
  let rounds = 0
  let final_bytes = image
  let stop: StopReason
  let stopped: StopReason | null = null
  periods: for (;;) {
    const period_end = t + o.period_s
    // Passes: each sends what is untransferred, in the planner's order, until the period ends. A pass
    // that runs out before the period does is over, as in classic pre-copy: the classic limits are
    // asked then (the plateau's measurements stay one per period, so with the history unchanged only
    // "few dirty" and "3x sent" can fire), and the next pass starts at once rather than leaving the
    // link idle while changes pile up.
    while (t < period_end) {
      const todo = untransferred(files, updates, tr, t)
      if (todo.length === 0) break
      const pass_start = t
      const units: (PrecopyUnit & { i: number })[] = todo.map((i) => ({
        i,
        id: files[i]!.id,
        size_bytes: files[i]!.size_bytes,
        read_only: files[i]!.read_only,
        update_probability: updates.estimate(i),
      }))
      for (const u of precopyOrder(units)) {
        if (t >= period_end) break
        tr.sent_at[u.i] = t
        t = link.send(t, u.size_bytes)
        sent += u.size_bytes
      }
      if (t >= period_end) break
      const now_left = untransferred(files, updates, tr, t)
      stopped = shouldStop(
        {
          untransferred_bytes: history,
          untransferred_units: now_left.length,
          read_only_untransferred_units: now_left.filter((i) => files[i]!.read_only).length,
          rounds,
          sent_bytes: sent,
          image_bytes: image,
        },
        o.termination ?? DEFAULT_TERMINATION,
      )
      if (stopped) {
        rounds++
        final_bytes = bytesOf(files, now_left)
        stop = stopped
        break periods
      }
      // Zero-byte units only: time stands still, so wait for the period's end.
      if (t === pass_start) break
    }
    // A period ends on time; a file in flight at its end finishes first.
    t = Math.max(t, period_end)
    rounds++
    const left = untransferred(files, updates, tr, t)
    const read_only_left = left.filter((i) => files[i]!.read_only).length
    // Seed 004 measures (and judges) only in the written phase, after every read-only file went.
    if (read_only_left === 0) history.push(bytesOf(files, left))
    final_bytes = bytesOf(files, left)
    const reason = shouldStop(
      {
        untransferred_bytes: history,
        untransferred_units: left.length,
        read_only_untransferred_units: read_only_left,
        rounds,
        sent_bytes: sent,
        image_bytes: image,
      },
      o.termination ?? DEFAULT_TERMINATION,
    )
    if (reason) {
      stop = reason
      break
    }
  }
  const downtime_s = final_bytes / rate
  return { precopy_bytes: sent, final_bytes, downtime_s, total_s: t + downtime_s, rounds, stop }
}

/** Fixed-order iterative pre-copy: round 1 sends everything, each next round what changed meanwhile. */
export function runFixedOrder(files: readonly SimFile[], o: SimOptions): MethodResult {
  const rate = (o.mbps * 1e6) / 8
  const link = new TokenBucket(rate, o.bucket_bytes)
  const updates = new Updates(files, o.period_s, o.seed, o.window_periods)
  const tr: Transfer = { sent_at: new Float64Array(files.length).fill(Number.NEGATIVE_INFINITY) }
  // A fixed order that knows nothing of updates (directory order): a seeded shuffle, the same every round.
  const order = files.map((_, i) => i)
  const rand = prng(o.seed, 7)
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1))
    ;[order[i], order[j]] = [order[j]!, order[i]!]
  }
  const rank = new Int32Array(files.length)
  order.forEach((i, r) => {
    rank[i] = r
  })
  const max_rounds = o.classic_rounds ?? 10
  let t = 0
  let sent = 0
  let rounds = 0
  let set = order
  let stop: MethodResult['stop'] = 'rounds-done'
  while (rounds < max_rounds) {
    for (const i of set) {
      tr.sent_at[i] = t
      t = link.send(t, files[i]!.size_bytes)
      sent += files[i]!.size_bytes
    }
    rounds++
    set = untransferred(files, updates, tr, t).sort((a, b) => rank[a]! - rank[b]!)
    if (set.length === 0) {
      stop = 'converged'
      break
    }
  }
  const final_bytes = bytesOf(files, set)
  const downtime_s = final_bytes / rate
  return { precopy_bytes: sent, final_bytes, downtime_s, total_s: t + downtime_s, rounds, stop }
}

/** Seed 004's fixed set: 11,000 files of 200 KB; 1,000 read-only, 5,000 at p=0.2, 5,000 at p=0.8. */
export function fixedSet(): SimFile[] {
  const files: SimFile[] = []
  const add = (n: number, read_only: boolean, p: number, tag: string) => {
    for (let i = 0; i < n; i++)
      files.push({ id: `${tag}-${i}`, size_bytes: 200 * 1000, read_only, p: read_only ? 0 : p })
  }
  add(1000, true, 0, 'ro')
  add(5000, false, 0.2, 'p20')
  add(5000, false, 0.8, 'p80')
  return files
}

/**
 * Seed 004's variable set: sizes 100, 200, ..., 1,000 KB; per size 100 read-only files, 500 at p=0.2 and
 * 500 at p=0.8.
 */
export function variableSet(): SimFile[] {
  const files: SimFile[] = []
  for (let kb = 100; kb <= 1000; kb += 100) {
    const add = (n: number, read_only: boolean, p: number, tag: string) => {
      for (let i = 0; i < n; i++)
        files.push({ id: `${tag}-${kb}-${i}`, size_bytes: kb * 1000, read_only, p: read_only ? 0 : p })
    }
    add(100, true, 0, 'ro')
    add(500, false, 0.2, 'p20')
    add(500, false, 0.8, 'p80')
  }
  return files
}

export interface Comparison {
  mbps: number
  planned: MethodResult
  fixed_order: MethodResult
  precopy_reduction_pct: number
  final_reduction_pct: number
}

const pct = (ours: number, theirs: number) => (theirs === 0 ? 0 : Math.round(1000 * (1 - ours / theirs)) / 10)

export function compare(files: readonly SimFile[], o: SimOptions): Comparison {
  const planned = runPlanned(files, o)
  const fixed_order = runFixedOrder(files, o)
  return {
    mbps: o.mbps,
    planned,
    fixed_order,
    precopy_reduction_pct: pct(planned.precopy_bytes, fixed_order.precopy_bytes),
    final_reduction_pct: pct(planned.final_bytes, fixed_order.final_bytes),
  }
}
