/**
 * Pre-copy ordered by update expectation (seed 004): which units of a service's state to send while it
 * runs, in what order, and when to stop pre-copying and freeze for the final copy. Pure: no I/O, no
 * clock; the mover (or the benchmark's simulation) feeds it measurements and sends what it says.
 *
 * A unit is a file (process driver) or a chunk of a disk image (QEMU). Its update probability comes from
 * recent history: the fraction of the last observed periods (snapshots, for Sustain) in which it changed.
 */
export interface PrecopyUnit {
  id: string
  size_bytes: number
  /** Opened read-only by the service (never written while it runs): sent first, never again. */
  read_only: boolean
  /** Probability (0..1) that the unit changes within one observation period, from recent history. */
  update_probability: number
}

/** Update expectation = update probability x size (bytes one period is expected to make stale). */
export function updateExpectation(unit: PrecopyUnit): number {
  if (unit.read_only) return 0
  if (!(unit.update_probability >= 0 && unit.update_probability <= 1))
    throw new Error(`unit ${unit.id}: update probability ${unit.update_probability} is not in 0..1`)
  if (!(unit.size_bytes >= 0)) throw new Error(`unit ${unit.id}: size ${unit.size_bytes} is not >= 0`)
  return unit.update_probability * unit.size_bytes
}

/**
 * Send order: read-only units first, then ascending update expectation. Ties (equal expectation) go to
 * the smaller unit, then by id, so the order is total and repeatable.
 */
export function precopyOrder<U extends PrecopyUnit>(units: readonly U[]): U[] {
  const keyed = units.map((u) => ({ u, e: updateExpectation(u) }))
  keyed.sort(
    (a, b) =>
      Number(b.u.read_only) - Number(a.u.read_only) ||
      a.e - b.e ||
      a.u.size_bytes - b.u.size_bytes ||
      (a.u.id < b.u.id ? -1 : a.u.id > b.u.id ? 1 : 0),
  )
  return keyed.map((k) => k.u)
}

/**
 * Update probabilities from a window of observations: `changed[i]` lists the unit ids that changed in
 * period i. A unit seen in no period has probability 0 (but is not read-only: that comes from how it is
 * opened, not from its history).
 */
export function probabilitiesFromHistory(changed: readonly ReadonlySet<string>[]): Map<string, number> {
  const counts = new Map<string, number>()
  for (const period of changed) for (const id of period) counts.set(id, (counts.get(id) ?? 0) + 1)
  const out = new Map<string, number>()
  for (const [id, n] of counts) out.set(id, n / changed.length)
  return out
}

export interface TerminationPolicy {
  /** Seed 004's β: how many untransferred-volume measurements the rule compares (even, >= 2). */
  beta: number
  /** Stop when mean(newer half) / mean(older half) lies within [low, high] (the seed: 0.99..1.01). */
  ratio_low: number
  ratio_high: number
  /** Classic limits (QEMU's and Xen's pre-copy): fewer dirty units than this ... */
  max_dirty_units: number
  /** ... or this many rounds ... */
  max_rounds: number
  /** ... or this many times the image sent. */
  max_sent_factor: number
}

export const DEFAULT_TERMINATION: TerminationPolicy = {
  beta: 6,
  ratio_low: 0.99,
  ratio_high: 1.01,
  max_dirty_units: 50,
  max_rounds: 29,
  max_sent_factor: 3,
}

export interface PrecopyProgress {
  /**
   * Untransferred volume (never sent, or changed since its send began) at the end of each round of the
   * written phase, oldest first: seed 004's measurements, taken only once every read-only unit is sent.
   */
  untransferred_bytes: readonly number[]
  /** Units untransferred now (never sent, or changed since sent). */
  untransferred_units: number
  /**
   * Read-only units not sent yet. Seed 004 sends them all before monitoring starts (its step B) and
   * judges termination only in the written phase: while any is left, nothing stops pre-copy.
   */
  read_only_untransferred_units: number
  rounds: number
  sent_bytes: number
  image_bytes: number
}

export type StopReason = 'plateau' | 'few-dirty' | 'max-rounds' | 'max-sent'

/** Seed 004's rule: the untransferred volume stopped shrinking (newer half within 1 % of the older). */
export function plateaued(history: readonly number[], policy: TerminationPolicy): boolean {
  if (policy.beta < 2 || policy.beta % 2 !== 0) throw new Error(`beta ${policy.beta}: an even number >= 2`)
  if (history.length < policy.beta) return false
  const last = history.slice(-policy.beta)
  const half = policy.beta / 2
  const mean = (xs: number[]) => xs.reduce((s, x) => s + x, 0) / xs.length
  const older = mean(last.slice(0, half))
  const newer = mean(last.slice(half))
  // Nothing left in either half is a plateau (at zero); the few-dirty limit normally fires first.
  if (older === 0) return newer === 0
  const ratio = newer / older
  return ratio >= policy.ratio_low && ratio <= policy.ratio_high
}

/**
 * Whether to stop pre-copying after a round, and by which rule (null: go on). Never during the
 * read-only phase: a read-only unit left for the final copy would be sent while the service is frozen
 * although it could have gone at any time before (and a small set would otherwise meet "under 50
 * untransferred units" after its first round, with almost nothing sent).
 */
export function shouldStop(
  progress: PrecopyProgress,
  policy: TerminationPolicy = DEFAULT_TERMINATION,
): StopReason | null {
  if (!(progress.read_only_untransferred_units >= 0))
    throw new Error(`read-only untransferred units ${progress.read_only_untransferred_units}: not >= 0`)
  if (progress.read_only_untransferred_units > 0) return null
  if (progress.untransferred_units < policy.max_dirty_units) return 'few-dirty'
  if (plateaued(progress.untransferred_bytes, policy)) return 'plateau'
  if (progress.rounds >= policy.max_rounds) return 'max-rounds'
  if (progress.sent_bytes >= policy.max_sent_factor * progress.image_bytes) return 'max-sent'
  return null
}
