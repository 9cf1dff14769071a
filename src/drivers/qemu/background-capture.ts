import { performance } from 'node:perf_hooks'
import type { Logger } from '../../../lib/log.ts'
import type { FilePart } from '../../../snapshot/index.ts'
import type { DiskTracker } from './disk-tracker.ts'
import { awaitMemoryFile, memorySinkUri } from './memory-sink.ts'
import type { QmpClient, QmpEvent } from './qmp.ts'
import { waitMigration } from './wait-migration.ts'

export interface BackgroundCaptureInput {
  qmp: QmpClient
  disks: DiskTracker
  has_disks: boolean
  /** The capture's directory: the memory stream goes to `memory_path`, incremental disk targets here. */
  dir: string
  memory_path: string
  generation: string
  log: Logger
  onFrozen?: (() => void) | undefined
}

export interface BackgroundCaptureResult {
  /** The guest's pause: QEMU's STOP to RESUME (its own clock), or as measured here without events. */
  pause_ms: number
  disk_parts: FilePart[]
  memory_ms: number
}

/** QEMU's time of an event, in ms. */
function eventTime_ms(event: QmpEvent): number | undefined {
  return event.timestamp ? event.timestamp.seconds * 1000 + event.timestamp.microseconds / 1000 : undefined
}

/**
 * Memory without stopping (issue 21): QEMU's `background-snapshot` migration stops the vCPUs only to
 * save the device state and write-protect memory, restarts them, then writes every page as it was at
 * that instant (a page the guest is about to write goes first). With disks, the driver stops the guest
 * itself so the disk backups start at the same instant as the memory state (one transaction), and the
 * migration's own restart ends the pause.
 *
 * Output commit: the state captured is the one at the stop, which happens after `migrate` (or `stop`)
 * is sent. `onFrozen` marks just before that command: every chunk read from the guest up to the mark
 * left it before the captured instant. Chunks read between the mark and the stop wait for the next
 * snapshot, which is sure to cover them.
 */
export async function captureBackground(input: BackgroundCaptureInput): Promise<BackgroundCaptureResult> {
  const { qmp, disks, log } = input
  const stops: number[] = []
  const resumes: number[] = []
  const onEvent = (event: QmpEvent) => {
    const at = eventTime_ms(event)
    if (at === undefined) return
    if (event.event === 'STOP') stops.push(at)
    if (event.event === 'RESUME') resumes.push(at)
  }
  qmp.on('event', onEvent)
  const jobs = input.has_disks ? await disks.prepare(qmp, input.dir) : []
  let stopped_here = false
  let migrating = false
  const started = performance.now()
  let resumed_at = 0
  try {
    input.onFrozen?.()
    if (jobs.length > 0) {
      // Sent together: QEMU runs them in order without a round trip between (the pause is theirs).
      const stop = qmp.execute('stop')
      const transaction = qmp.execute('transaction', { actions: disks.transaction(jobs) })
      const migrate = qmp.execute('migrate', { uri: memorySinkUri(input.memory_path) })
      stopped_here = true
      await stop
      await transaction.then(
        () => disks.started(jobs),
        (error: Error) => {
          migrate.catch(() => {})
          throw error
        },
      )
      await migrate
    } else await qmp.execute('migrate', { uri: memorySinkUri(input.memory_path) })
    migrating = true
    await waitMigration(qmp)
    migrating = false
    resumed_at = performance.now()
    await awaitMemoryFile(input.memory_path)
  } catch (error) {
    if (migrating) await qmp.execute('migrate_cancel').catch(() => {})
    await disks.abort(qmp, jobs, (error as Error).message)
    throw error
  } finally {
    // The migration restarts the guest; if it failed before that, the stop here must not stay.
    if (stopped_here || migrating) await resumeIfPaused(qmp, log)
    qmp.off('event', onEvent)
  }
  const memory_ms = resumed_at - started
  const disk_parts = jobs.length > 0 ? await disks.finish(qmp, jobs, input.generation) : []
  const stop = stops[0]
  const resume = resumes.find((t) => stop !== undefined && t >= stop)
  const pause_ms = stop !== undefined && resume !== undefined ? resume - stop : memory_ms
  return { pause_ms, disk_parts, memory_ms }
}

async function resumeIfPaused(qmp: QmpClient, log: Logger): Promise<void> {
  try {
    const { status } = await qmp.execute<{ status: string }>('query-status')
    if (status === 'paused' || status === 'postmigrate' || status === 'finish-migrate')
      await qmp.execute('cont')
  } catch (error) {
    log.error({ event: 'resume_failed', error: (error as Error).message }, 'could not resume the guest')
  }
}

/** Whether this QEMU can take background snapshots (the capability is refused where it cannot). */
export async function enableBackgroundSnapshot(qmp: QmpClient, log: Logger): Promise<boolean> {
  try {
    await qmp.execute('migrate-set-capabilities', {
      capabilities: [{ capability: 'background-snapshot', state: true }],
    })
    return true
  } catch (error) {
    log.warn(
      { event: 'background_snapshot_unavailable', error: (error as Error).message },
      'QEMU cannot take background snapshots here; captures stop the guest while memory is copied',
    )
    return false
  }
}
