import { EXIT_UNKNOWN_VERB, HELPER_TIMEOUTS_MS, infoEnv } from '../../helpers/index.ts'
import type { Logger } from '../../lib/log.ts'
import type { HelperOptions, HelperResult } from '../drivers/driver.ts'

/** What the node tells the helper's `info` verb (helpers/HELPERS.md, "Context"). */
export interface InfoState {
  newest_snapshot_ms: number | null
  all_online_ms: number | null
  split: boolean
}

export interface HelperInfoDeps {
  run: (verb: 'info', args: string[], options: HelperOptions) => Promise<HelperResult>
  control_socket: string
  log: Logger
  /** A newer snapshot alone re-informs the helper at most this often (a split or heal at once). */
  snapshot_interval_ms: number
}

/**
 * Runs the helper's `info` verb when what the node knows changes: split or healed, a newer snapshot.
 * One call at a time; changes that arrive meanwhile coalesce into one call with the latest state. A
 * helper that answers 64 (verb not supported) is not asked again; a failing one is logged and asked
 * again at the next change. Snapshots come every few seconds; telling a helper of each would spawn a
 * process per snapshot, so a change of the newest snapshot alone waits out `snapshot_interval_ms`.
 */
export class HelperInfo {
  /** The state the helper last took (exit 0). */
  private delivered: InfoState | null = null
  private latest: InfoState | null = null
  private running = false
  private unsupported = false
  private closed = false
  private last_run_ms = Number.NEGATIVE_INFINITY
  private wait: { timer: NodeJS.Timeout; resolve: () => void } | null = null

  constructor(private readonly deps: HelperInfoDeps) {}

  update(state: InfoState): void {
    if (this.unsupported || this.closed) return
    if (same(state, this.latest ?? this.delivered)) return
    this.latest = state
    if (this.wait && state.split !== this.delivered?.split) this.endWait() // a split or heal goes out at once
    if (!this.running) void this.drain()
  }

  close(): void {
    this.closed = true
    this.endWait()
  }

  private endWait(): void {
    if (!this.wait) return
    clearTimeout(this.wait.timer)
    this.wait.resolve()
  }

  /** How long a snapshot-only change must still wait (0 for a split or heal, or once the interval passed). */
  private waitFor(state: InfoState): number {
    if (state.split !== this.delivered?.split) return 0
    return Math.max(0, this.last_run_ms + this.deps.snapshot_interval_ms - performance.now())
  }

  /** Resolves after `wait_ms`, or earlier on a split, a heal or close (endWait). */
  private async pause(wait_ms: number): Promise<void> {
    await new Promise<void>((resolve) => {
      this.wait = { timer: setTimeout(resolve, wait_ms), resolve }
    })
    this.wait = null
  }

  private async drain(): Promise<void> {
    this.running = true
    try {
      while (this.latest && !this.closed && !this.unsupported) {
        const wait_ms = this.waitFor(this.latest)
        if (wait_ms > 0) await this.pause(wait_ms)
        const state = this.latest
        this.latest = null
        if (!state || this.closed || same(state, this.delivered)) continue
        this.last_run_ms = performance.now()
        const result = await this.deps
          .run('info', [], {
            env: infoEnv({ ...state, control_socket: this.deps.control_socket }),
            timeout_ms: HELPER_TIMEOUTS_MS.info,
          })
          .catch((error: Error) => ({ code: -1, stderr: error.message }))
        if (result.code === EXIT_UNKNOWN_VERB) {
          this.unsupported = true
          this.deps.log.info('helper does not support info; not asked again')
        } else if (result.code !== 0) {
          this.deps.log.warn({ code: result.code, stderr: result.stderr.trim() }, 'helper info failed')
        } else {
          this.delivered = state
          this.deps.log.debug({ ...state }, 'helper informed')
        }
      }
    } finally {
      this.running = false
    }
  }
}

/** all_online_ms moves on every report while everyone is online: it rides along, it is not a change. */
function same(a: InfoState, b: InfoState | null): boolean {
  return b !== null && a.split === b.split && a.newest_snapshot_ms === b.newest_snapshot_ms
}
