import { readFileSync, rmSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { basename, dirname, join, resolve } from 'node:path'
import { writeFileAtomic } from '../../../lib/atomic-write.ts'
import type { Logger } from '../../../lib/log.ts'
import { bootId, procInfo } from './proc.ts'

/**
 * Beside the state directory, not in it: a snapshot never captures them and a restore, which replaces
 * the state directory, never removes them.
 */
export interface FencePaths {
  /** Locked (flock) by every run of the service for as long as any of its processes lives. */
  lock: string
  /** Which process leads the running service: written at start, removed when it exits. */
  record: string
}

export function fencePaths(state_dir: string): FencePaths {
  const dir = dirname(resolve(state_dir))
  const name = basename(resolve(state_dir))
  return { lock: join(dir, `.${name}.lock`), record: join(dir, `.${name}.service.json`) }
}

/** The leader of a service run: pid, start time and boot id name one process even after pid reuse. */
export interface ServiceRecord {
  version: 1
  pid: number
  start_ticks: number
  boot_id: string
  /** The node process that started it. */
  node_pid: number
  started_at: string
}

/**
 * Never throws: the service runs (and dies with its node) either way; without a record a later start
 * finds a leftover by its lock and port only, which the warning says.
 */
export async function writeServiceRecord(paths: FencePaths, pid: number, log: Logger): Promise<void> {
  const info = procInfo(pid)
  if (!info) return // already gone: its exit handler forgets it
  const record: ServiceRecord = {
    version: 1,
    pid,
    start_ticks: info.start_ticks,
    boot_id: bootId(),
    node_pid: process.pid,
    started_at: new Date().toISOString(),
  }
  try {
    await writeFileAtomic(paths.record, `${JSON.stringify(record)}\n`)
  } catch (error) {
    log.warn(
      { event: 'service_record_unwritten', path: paths.record, reason: (error as Error).message },
      'the service record could not be written',
    )
  }
}

/**
 * Removes the record if it still names `pid` (synchronous: called from an exit handler, it must not
 * land after the next run wrote its own).
 */
export function forgetServiceRecord(paths: FencePaths, pid: number): void {
  try {
    if ((JSON.parse(readFileSync(paths.record, 'utf8')) as ServiceRecord).pid !== pid) return
  } catch {
    return // none, or unreadable: reclaim deals with it
  }
  rmSync(paths.record, { force: true })
}

export type RecordState =
  | { kind: 'none' }
  | { kind: 'unreadable'; reason: string }
  | { kind: 'stale'; record: ServiceRecord }
  | { kind: 'alive'; record: ServiceRecord }

/** Whether the recorded leader still runs (same boot, same start time: not a reused pid). */
export async function readServiceRecord(paths: FencePaths): Promise<RecordState> {
  let text: string
  try {
    text = await readFile(paths.record, 'utf8')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { kind: 'none' }
    return { kind: 'unreadable', reason: (error as Error).message }
  }
  let record: ServiceRecord
  try {
    record = JSON.parse(text) as ServiceRecord
    if (!Number.isInteger(record.pid) || record.pid <= 1 || !Number.isInteger(record.start_ticks)) {
      throw new Error('no valid pid and start_ticks')
    }
  } catch (error) {
    return { kind: 'unreadable', reason: (error as Error).message }
  }
  const info = procInfo(record.pid)
  const same = info !== undefined && info.start_ticks === record.start_ticks && record.boot_id === bootId()
  return { kind: same ? 'alive' : 'stale', record }
}
