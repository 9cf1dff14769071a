import { readFileSync } from 'node:fs'
import { performance } from 'node:perf_hooks'
import { threadId } from './thread-priority.ts'

/**
 * Diagnostics for issue 24 (a new server silent 0.6-1.5 s): with SUSTAIN_STALL_TRACE set, a thread that
 * calls `tick()` on a timer logs every gap between two ticks longer than the threshold, with what the
 * kernel says the thread did meanwhile (/proc/thread-self/schedstat: time on a CPU, time runnable but
 * waiting for one). A gap mostly on CPU: the thread was busy (synchronous work); mostly waiting for a
 * CPU: starved; neither: blocked in the kernel (a sync syscall, a page fault, fork's mm lock). Off by
 * default: no timer, no reads.
 */
export const STALL_TRACE =
  process.env.SUSTAIN_STALL_TRACE !== undefined && process.env.SUSTAIN_STALL_TRACE !== ''
const GAP_THRESHOLD_MS =
  Number(process.env.SUSTAIN_STALL_TRACE) > 0 ? Number(process.env.SUSTAIN_STALL_TRACE) : 150

interface Sched {
  cpu_ns: number
  wait_ns: number
}

export interface StallRecord {
  event: 'stall'
  thread: string
  gap_ms: number
  /** Epoch ms of the tick before the gap. */
  from_epoch_ms: number
  cpu_ms: number
  runqueue_ms: number
  /** CPU used by the whole process (every thread) during the gap. */
  process_cpu_ms: number
  /** The step the thread was in, if it says (`step`). */
  step: string | null
}

export class StallTrace {
  private readonly path: string | null
  private last_ms = performance.now()
  private last: Sched | null
  private last_usage = process.cpuUsage()
  step: string | null = null

  constructor(
    private readonly thread: string,
    private readonly report: (record: StallRecord) => void,
  ) {
    const tid = threadId()
    this.path = tid === null ? null : `/proc/${process.pid}/task/${tid}/schedstat`
    this.last = this.sched()
  }

  private sched(): Sched | null {
    if (this.path === null) return null
    try {
      const [cpu, wait] = readFileSync(this.path, 'latin1').split(' ')
      return { cpu_ns: Number(cpu), wait_ns: Number(wait) }
    } catch {
      return null
    }
  }

  tick(): void {
    const now = performance.now()
    const sched = this.sched()
    const gap = now - this.last_ms
    const usage = process.cpuUsage()
    if (gap > GAP_THRESHOLD_MS) {
      this.report({
        event: 'stall',
        thread: this.thread,
        gap_ms: Math.round(gap),
        from_epoch_ms: Math.round(performance.timeOrigin + this.last_ms),
        cpu_ms: sched && this.last ? Math.round((sched.cpu_ns - this.last.cpu_ns) / 1e6) : -1,
        runqueue_ms: sched && this.last ? Math.round((sched.wait_ns - this.last.wait_ns) / 1e6) : -1,
        process_cpu_ms: Math.round(
          (usage.user + usage.system - this.last_usage.user - this.last_usage.system) / 1000,
        ),
        step: this.step,
      })
    }
    this.last_ms = now
    this.last = sched
    this.last_usage = usage
  }
}

/** A 20 ms timer on this thread that reports its own gaps (only with SUSTAIN_STALL_TRACE). */
export function traceThreadStalls(thread: string, report: (record: StallRecord) => void): StallTrace | null {
  if (!STALL_TRACE) return null
  const trace = new StallTrace(thread, report)
  setInterval(() => trace.tick(), 20).unref()
  return trace
}
