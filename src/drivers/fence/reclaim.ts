import { rm } from 'node:fs/promises'
import { resolve } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Logger } from '../../../lib/log.ts'
import { commandLine, environHas, listeningInodes, pidsWithOpen, procInfo, running } from './proc.ts'
import { type FencePaths, fencePaths, readServiceRecord } from './service-record.ts'

export class FenceError extends Error {}

/** How long leftovers may take to die after SIGKILL before the node refuses the state directory. */
const RECLAIM_TIMEOUT_MS = 5000

interface Leftover {
  pid: number
  /** How it was found: the record of an earlier run, the state lock, or the service port. */
  via: 'record' | 'lock' | 'port'
}

/**
 * What an earlier run of this node left running on `state_dir`: the leader its record names (same pid
 * and start time), whatever holds the state lock, and listeners on the service port whose environment
 * names this state directory (a copy started by hand, or a daemon that dropped the lock).
 */
export function findLeftovers(state_dir: string, port: number, paths: FencePaths, record_pid?: number) {
  const found = new Map<number, Leftover>()
  if (record_pid !== undefined) found.set(record_pid, { pid: record_pid, via: 'record' })
  for (const pid of pidsWithOpen(new Set([paths.lock]))) {
    if (!found.has(pid)) found.set(pid, { pid, via: 'lock' })
  }
  const ours = `SUSTAIN_STATE_DIR=${resolve(state_dir)}`
  for (const pid of pidsWithOpen(listeningInodes(port))) {
    if (!found.has(pid) && environHas(pid, ours)) found.set(pid, { pid, via: 'port' })
  }
  found.delete(process.pid)
  return [...found.values()]
}

/** SIGKILL the process and its group (never this process's own group). */
function kill(pid: number): void {
  const own_group = procInfo(process.pid)?.pgrp
  const group = procInfo(pid)?.pgrp
  for (const target of group && group > 1 && group !== own_group ? [-group, pid] : [pid]) {
    try {
      process.kill(target, 'SIGKILL')
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error
    }
  }
}

/**
 * Before a node uses its state directory: stop whatever an earlier incarnation left running on it
 * (a service that outlived its node, a copy started by hand) and log what was found. Throws when
 * something still holds the directory after SIGKILL: a node that cannot be sure the service is stopped
 * does not use its data.
 */
export async function reclaimLeftovers(options: { state_dir: string; port: number; log: Logger }) {
  const { state_dir, port, log } = options
  const paths = fencePaths(state_dir)
  const record = await readServiceRecord(paths)
  if (record.kind === 'unreadable') {
    log.warn({ event: 'service_record_unreadable', path: paths.record, reason: record.reason }, 'ignored')
  }
  const leftovers = findLeftovers(
    state_dir,
    port,
    paths,
    record.kind === 'alive' ? record.record.pid : undefined,
  )
  for (const leftover of leftovers) {
    log.warn(
      {
        event: 'leftover_found',
        pid: leftover.pid,
        via: leftover.via,
        command: commandLine(leftover.pid).slice(0, 300),
        ...(leftover.via === 'record' && record.kind === 'alive'
          ? { node_pid: record.record.node_pid, started_at: record.record.started_at }
          : {}),
      },
      `a service left running on ${state_dir} by an earlier run (pid ${leftover.pid}, found by ${leftover.via}): stopping it`,
    )
    kill(leftover.pid)
  }
  const deadline = performance.now() + RECLAIM_TIMEOUT_MS
  const started = performance.now()
  for (;;) {
    // Killing a namespace's leader takes its whole namespace: look again for anything still holding on.
    const left = [...leftovers.map((l) => l.pid), ...findLeftovers(state_dir, port, paths).map((l) => l.pid)]
    const alive = [...new Set(left)].filter(running)
    if (alive.length === 0) break
    if (performance.now() > deadline) {
      throw new FenceError(
        `the state directory ${state_dir} is still in use after SIGKILL (pids ${alive.join(', ')}): not starting over it`,
      )
    }
    for (const pid of alive) kill(pid)
    await sleep(5)
  }
  if (record.kind !== 'none') await rm(paths.record, { force: true })
  if (leftovers.length > 0) {
    log.warn(
      {
        event: 'leftovers_stopped',
        pids: leftovers.map((l) => l.pid),
        stopped_ms: Number((performance.now() - started).toFixed(1)),
      },
      `stopped ${leftovers.length} leftover process(es) of an earlier run`,
    )
  } else if (record.kind === 'stale') {
    log.info(
      { event: 'service_record_stale', pid: record.record.pid },
      'the earlier run of the service is gone',
    )
  }
  return leftovers
}
