/**
 * Phi-accrual failure detector (Hayashibara et al.), as Akka and Cassandra use it.
 * Pure: callers pass arrival times in milliseconds; nothing here reads a clock. The simulator and the
 * real overlay run this same code.
 *
 * phi = -log10(P(a heartbeat arrives later than now | inter-arrival history)), with the history
 * modelled as a normal distribution (logistic approximation of its CDF, as in Akka).
 */

export interface PhiAccrualOptions {
  /** phi at or above which a peer is suspected; 8 means ~1e-8 chance the peer is merely slow. */
  threshold: number
  /** Number of recent inter-arrival intervals kept. */
  window_size: number
  /** Floor for the standard deviation so a perfectly regular link does not make phi explode. */
  min_std_dev_ms: number
  /** Extra pause tolerated on top of the mean interval (GC, bulk transfer head-of-line blocking). */
  acceptable_pause_ms: number
  /** Interval assumed before any has been observed. */
  first_interval_ms: number
  /**
   * How many intervals of first_interval_ms +- a quarter seed the history (even, default 2). More make
   * the expected interval a stronger prior, so one stall early in a connection inflates the standard
   * deviation (and delays detection) less; they leave the window like any sample.
   */
  prior_intervals?: number
}

export const DEFAULT_PHI_OPTIONS: PhiAccrualOptions = {
  threshold: 8,
  window_size: 100,
  min_std_dev_ms: 50,
  acceptable_pause_ms: 0,
  first_interval_ms: 250,
}

export class PhiAccrual {
  private readonly intervals_ms: number[] = []
  private sum_ms = 0
  private sum_sq = 0
  private last_arrival_ms: number | null = null

  constructor(readonly options: PhiAccrualOptions = DEFAULT_PHI_OPTIONS) {
    if (!(options.threshold > 0)) throw new RangeError('phi threshold must be > 0')
    if (!(options.window_size >= 2)) throw new RangeError('phi window_size must be >= 2')
    if (!(options.min_std_dev_ms > 0)) throw new RangeError('phi min_std_dev_ms must be > 0')
    const prior = options.prior_intervals ?? 2
    if (!(Number.isInteger(prior) && prior >= 2 && prior % 2 === 0 && prior <= options.window_size)) {
      throw new RangeError('phi prior_intervals must be even, >= 2 and <= window_size')
    }
  }

  /** Record a heartbeat (any message from the peer counts) that arrived at `now_ms`. */
  heartbeat(now_ms: number): void {
    if (this.last_arrival_ms === null) {
      // Seed the history with the expected interval so phi is meaningful from the first beat.
      const first = this.options.first_interval_ms
      const std = first / 4
      for (let i = 0; i < (this.options.prior_intervals ?? 2) / 2; i++) {
        this.push(first - std)
        this.push(first + std)
      }
    } else {
      const interval_ms = now_ms - this.last_arrival_ms
      if (interval_ms < 0) throw new RangeError('heartbeat arrival went backwards')
      this.push(interval_ms)
    }
    this.last_arrival_ms = now_ms
  }

  /** Suspicion level at `now_ms`; 0 before the first heartbeat. */
  phi(now_ms: number): number {
    if (this.last_arrival_ms === null) return 0
    const elapsed_ms = Math.max(0, now_ms - this.last_arrival_ms)
    const n = this.intervals_ms.length
    const mean = this.sum_ms / n + this.options.acceptable_pause_ms
    const variance = Math.max(0, this.sum_sq / n - (this.sum_ms / n) ** 2)
    const std = Math.max(Math.sqrt(variance), this.options.min_std_dev_ms)
    const y = (elapsed_ms - mean) / std
    const e = Math.exp(-y * (1.5976 + 0.070566 * y * y))
    // Two branches for numeric stability: 1 - CDF vs CDF near 0 and 1.
    const p_later = elapsed_ms > mean ? e / (1 + e) : 1 - 1 / (1 + e)
    return p_later <= 0 ? Number.POSITIVE_INFINITY : -Math.log10(p_later)
  }

  suspected(now_ms: number): boolean {
    return this.phi(now_ms) >= this.options.threshold
  }

  /**
   * Earliest time at which, with no further heartbeat, phi reaches the threshold. Lets a caller set
   * one timer instead of polling. Found by bisection (phi is monotonic in elapsed time).
   */
  suspectAt(): number | null {
    if (this.last_arrival_ms === null) return null
    let lo = this.last_arrival_ms
    let hi = lo + 1
    while (!this.suspected(hi)) hi = lo + (hi - lo) * 2
    while (hi - lo > 1) {
      const mid = Math.floor((lo + hi) / 2)
      if (this.suspected(mid)) hi = mid
      else lo = mid
    }
    return hi
  }

  private push(interval_ms: number): void {
    this.intervals_ms.push(interval_ms)
    this.sum_ms += interval_ms
    this.sum_sq += interval_ms * interval_ms
    if (this.intervals_ms.length > this.options.window_size) {
      const old = this.intervals_ms.shift()!
      this.sum_ms -= old
      this.sum_sq -= old * old
    }
  }
}
