import { spawn } from 'node:child_process'
import { readlinkSync } from 'node:fs'
import { setPriority } from 'node:os'

/** This thread's kernel id (Linux), or null. */
export function threadId(): number | null {
  try {
    return Number(readlinkSync('/proc/thread-self').split('/').pop())
  } catch {
    return null
  }
}

export type ThreadPriority = 'rr' | 'nice' | 'none'

/**
 * Puts the calling thread (the control plane's heartbeat thread) ahead of CPU-bound work: SCHED_RR
 * priority 1 (`chrt`, needs CAP_SYS_NICE, as corosync does for its token thread), else nice -10, else as
 * it was. Issue 24: at load 40 on 2 cores a new server's heartbeat thread waited 0.5-1 s in the run queue
 * (schedstat, lib/stall-trace.ts) and every peer suspected it. The kernel's real-time throttling
 * (sched_rt_runtime_us, 95 % by default) bounds what a runaway thread could take. SUSTAIN_CONTROL_PRIORITY
 * = rr | nice | none chooses (default rr).
 */
export async function raiseThreadPriority(): Promise<ThreadPriority> {
  const wanted = process.env.SUSTAIN_CONTROL_PRIORITY ?? 'rr'
  const tid = threadId()
  if (tid === null || wanted === 'none') return 'none'
  if (wanted === 'rr') {
    const ok = await new Promise<boolean>((resolve) => {
      const child = spawn('chrt', ['--rr', '--pid', '1', String(tid)], { stdio: 'ignore' })
      child.once('error', () => resolve(false))
      child.once('exit', (code) => resolve(code === 0))
    })
    if (ok) return 'rr'
  }
  try {
    setPriority(tid, -10)
    return 'nice'
  } catch {
    return 'none'
  }
}
