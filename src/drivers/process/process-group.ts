import { readdirSync, readFileSync } from 'node:fs'
import { setTimeout as sleep } from 'node:timers/promises'

/** Sends `signal` to every process of the group; false when the group is gone. */
export function signalGroup(pgid: number, signal: NodeJS.Signals | 0): boolean {
  if (!(pgid > 1)) throw new Error(`refusing to signal process group ${pgid}`)
  try {
    process.kill(-pgid, signal)
    return true
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ESRCH') return false
    throw error
  }
}

interface ProcStat {
  state: string
  pgrp: number
}

/** `/proc/<pid>/stat` (or a task's): the command name may hold spaces and parentheses, so split after the last `)`. */
function readProcStat(path: string): ProcStat | undefined {
  let text: string
  try {
    text = readFileSync(path, 'latin1')
  } catch {
    return undefined // gone
  }
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ')
  return { state: fields[0] ?? '?', pgrp: Number(fields[2]) }
}

function procText(pid: number, name: string): string {
  try {
    return readFileSync(`/proc/${pid}/${name}`, 'latin1').trim()
  } catch {
    return '?'
  }
}

/** Every process in the group (Linux /proc). Processes forked after the scan are not listed. */
export function groupMembers(pgid: number): number[] {
  const members: number[] = []
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue
    if (readProcStat(`/proc/${name}/stat`)?.pgrp === pgid) members.push(Number(name))
  }
  return members
}

/** Stopped, traced, zombie or dead: the thread runs no more code that could change files. */
const QUIET_STATES = new Set(['T', 't', 'Z', 'X', 'x'])

function threadsQuiet(pid: number): boolean {
  let tasks: string[]
  try {
    tasks = readdirSync(`/proc/${pid}/task`)
  } catch {
    return true // the process is gone
  }
  for (const tid of tasks) {
    const stat = readProcStat(`/proc/${pid}/task/${tid}/stat`)
    if (stat && !QUIET_STATES.has(stat.state)) return false
  }
  return true
}

/**
 * SIGSTOP is delivered asynchronously: a thread in the middle of a write() finishes it first. A copy of
 * the state is consistent only once every thread of every listed process shows state T.
 */
export async function waitStopped(pids: readonly number[], timeout_ms: number): Promise<void> {
  const deadline = performance.now() + timeout_ms
  for (let round = 0; ; round++) {
    if (pids.every(threadsQuiet)) return
    if (performance.now() > deadline) {
      const busy = pids.filter((pid) => !threadsQuiet(pid))
      const states = busy.map(
        (pid) =>
          `${pid} ${readProcStat(`/proc/${pid}/stat`)?.state ?? 'gone'} ${procText(pid, 'comm')} ${procText(pid, 'wchan')}`,
      )
      throw new Error(
        `service did not stop within ${timeout_ms} ms of SIGSTOP (a thread stays in a system call: ${states.join(', ')})`,
      )
    }
    // Yield without a timer's 1 ms granularity first; back off if a thread is stuck in the kernel.
    if (round < 50) await new Promise((resolve) => setImmediate(resolve))
    else await sleep(1)
  }
}

/**
 * Resolves true once no process of the group runs. Zombies count as gone: orphans are reaped by init,
 * which some inits (container and microVM ones) do lazily, up to seconds later.
 */
export async function waitGroupGone(pgid: number, timeout_ms: number): Promise<boolean> {
  const deadline = performance.now() + timeout_ms
  for (;;) {
    if (!signalGroup(pgid, 0)) return true
    const running = groupMembers(pgid).filter((pid) => {
      const state = readProcStat(`/proc/${pid}/stat`)?.state
      return state !== undefined && state !== 'Z' && state !== 'X'
    })
    if (running.length === 0) return true
    if (performance.now() > deadline) return false
    await sleep(5)
  }
}
