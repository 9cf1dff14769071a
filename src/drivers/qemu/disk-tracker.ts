import { execFile } from 'node:child_process'
import { open, rm, truncate } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import type { Logger } from '../../../lib/log.ts'
import type { FilePart } from '../../../snapshot/index.ts'
import { diskContentName } from './command.ts'
import type { QemuServiceManifest } from './manifest.ts'
import type { QmpClient } from './qmp.ts'
import { run } from './run-command.ts'

type Disk = QemuServiceManifest['disks'][number]
/** The dirty bitmap on each disk: the guest's writes since the last capture. */
export const BITMAP = 'sustain'
const COPY_BYTES = 1024 * 1024
const JOB_TIMEOUT_MS = 600_000
const JOB_POLL_MS = 10

/** One `qemu-img map --output=json` entry (present: allocated in the image, zero: reads as zeros). */
interface MapEntry {
  start: number
  length: number
  present?: boolean
  zero: boolean
  data: boolean
  offset?: number
}

/** A disk backup started at the capture instant: a full copy into the mirror, or the dirty blocks only. */
interface DiskJob {
  disk: Disk
  job: string
  target_node: string
  /** The incremental target (a qcow2 in the capture directory); absent for a full copy (the mirror). */
  delta_file?: string
  full: boolean
}

/**
 * Disks by change (issue 21). Each disk has a mirror in the staging area: a raw file holding the disk's
 * content as of the last capture. The first capture after QEMU starts copies the whole disk into it
 * (`blockdev-backup sync=full`) and, in the same transaction, adds a dirty bitmap; every later capture
 * copies only the blocks the bitmap marks (`sync=incremental` into a qcow2, whose map says which blocks
 * it holds), at the instant the memory state is taken, and writes them into the mirror. The engine then
 * reads only the chunks those blocks touch (FilePart.changed). A bitmap lives in one QEMU process: after
 * a restart (or any failed capture) the next capture reads the whole disk again, and says so.
 */
export class DiskTracker {
  /** Capture generation the mirrors hold; null: no valid mirror (the next capture is full). */
  private generation: string | null = null
  private bitmaps = false
  private seq = 0

  constructor(
    private readonly disks: readonly Disk[],
    private readonly mirror_dir: string,
    private readonly log: Logger,
  ) {}

  mirrorPath(disk: Disk): string {
    return join(this.mirror_dir, diskContentName(disk))
  }

  /**
   * The mirrors no longer match the bitmaps: the next capture reads every disk whole. `qemu_started`:
   * a new QEMU process, whose disks have no bitmaps (else they stay, and that capture replaces them).
   */
  reset(reason: string, qemu_started = false): void {
    if (this.generation !== null || this.bitmaps)
      this.log.info(
        { event: 'disk_tracking_reset', reason },
        `disk change tracking reset (${reason}): the next capture reads every disk whole`,
      )
    this.generation = null
    if (qemu_started) this.bitmaps = false
  }

  /**
   * Before the pause: targets of the backups added to QEMU (a fresh mirror for a full copy, a qcow2
   * for the changed blocks), so that inside the pause only the transaction runs.
   */
  async prepare(qmp: QmpClient, capture_dir: string): Promise<DiskJob[]> {
    const full = this.generation === null
    if (full && this.bitmaps) {
      for (const disk of this.disks)
        await qmp.execute('block-dirty-bitmap-remove', { node: disk.name, name: BITMAP }).catch(() => {})
      this.bitmaps = false
    }
    const sizes = await virtualSizes(qmp)
    const jobs: DiskJob[] = []
    for (const disk of this.disks) {
      const size = sizes.get(disk.name)
      if (size === undefined) throw new Error(`QEMU has no disk ${disk.name}`)
      const n = ++this.seq
      const target_node = `sustain-target-${n}`
      if (full) {
        const mirror = this.mirrorPath(disk)
        await rm(mirror, { force: true })
        await (await open(mirror, 'w')).close()
        await truncate(mirror, size)
        await qmp.execute('blockdev-add', {
          driver: 'raw',
          'node-name': target_node,
          discard: 'unmap',
          'detect-zeroes': 'unmap',
          file: { driver: 'file', filename: mirror },
        })
        jobs.push({ disk, job: `sustain-backup-${n}`, target_node, full })
      } else {
        const delta_file = join(capture_dir, `${disk.name}.delta.qcow2`)
        await run('qemu-img', ['create', '-q', '-f', 'qcow2', delta_file, String(size)])
        await qmp.execute('blockdev-add', {
          driver: 'qcow2',
          'node-name': target_node,
          file: { driver: 'file', filename: delta_file },
        })
        jobs.push({ disk, job: `sustain-backup-${n}`, target_node, delta_file, full })
      }
    }
    return jobs
  }

  /** Inside the pause: every disk's backup starts at this instant (one transaction, all or none). */
  transaction(jobs: readonly DiskJob[]): Record<string, unknown>[] {
    const actions: Record<string, unknown>[] = []
    for (const j of jobs) {
      if (j.full)
        actions.push({
          type: 'block-dirty-bitmap-add',
          data: { node: j.disk.name, name: BITMAP, persistent: false },
        })
      actions.push({
        type: 'blockdev-backup',
        data: {
          device: j.disk.name,
          target: j.target_node,
          'job-id': j.job,
          'auto-dismiss': false,
          ...(j.full ? { sync: 'full' } : { sync: 'incremental', bitmap: BITMAP }),
        },
      })
    }
    return actions
  }

  /** The transaction ran: the bitmaps exist (a full capture added them). */
  started(jobs: readonly DiskJob[]): void {
    if (jobs.some((j) => j.full)) this.bitmaps = true
  }

  /**
   * After the pause: waits for the backups, writes the changed blocks into the mirrors and returns the
   * disk parts. Any failure leaves the mirrors invalid (the next capture is full).
   */
  async finish(qmp: QmpClient, jobs: readonly DiskJob[], generation: string): Promise<FilePart[]> {
    const since = this.generation
    this.generation = null
    const parts: FilePart[] = []
    let changed_bytes = 0
    try {
      for (const j of jobs) await waitJob(qmp, j.job)
      // The targets are closed before they are read (QEMU holds a lock on them while they are attached).
      await cleanupJobs(qmp, jobs)
      for (const j of jobs) {
        const name = diskContentName(j.disk)
        const path = this.mirrorPath(j.disk)
        if (j.full || since === null) {
          // QEMU's full backup writes the disk's holes as zeros (allocated, measured): make them holes again.
          await run('fallocate', ['--dig-holes', path])
          parts.push({ name, path, generation })
          continue
        }
        const ranges = await applyDelta(j.delta_file!, path)
        for (const [a, b] of ranges) changed_bytes += b - a
        parts.push({ name, path, generation, changed: { since, ranges } })
      }
    } catch (error) {
      await cleanupJobs(qmp, jobs)
      this.reset(`capture failed: ${(error as Error).message}`)
      throw error
    }
    this.generation = generation
    const full = jobs.some((j) => j.full)
    this.log.info(
      { event: 'disks_captured', full, changed_bytes: full ? undefined : changed_bytes },
      full
        ? 'disks captured whole (no dirty bitmap yet)'
        : `disks captured by change (${changed_bytes} bytes)`,
    )
    return parts
  }

  /** A capture failed after prepare: drop its targets; the next capture reads every disk whole. */
  async abort(qmp: QmpClient | null, jobs: readonly DiskJob[], reason: string): Promise<void> {
    if (qmp) await cleanupJobs(qmp, jobs)
    this.reset(`capture failed: ${reason}`)
  }
}

async function virtualSizes(qmp: QmpClient): Promise<Map<string, number>> {
  const blocks =
    await qmp.execute<{ device: string; inserted?: { image?: { 'virtual-size'?: number } } }[]>('query-block')
  const sizes = new Map<string, number>()
  for (const b of blocks) {
    const size = b.inserted?.image?.['virtual-size']
    if (size !== undefined) sizes.set(b.device, size)
  }
  return sizes
}

async function waitJob(qmp: QmpClient, id: string): Promise<void> {
  const deadline = performance.now() + JOB_TIMEOUT_MS
  for (;;) {
    const jobs = await qmp.execute<{ id: string; status: string; error?: string }[]>('query-jobs')
    const job = jobs.find((j) => j.id === id)
    if (!job) throw new Error(`disk backup ${id} vanished`)
    if (job.status === 'concluded') {
      if (job.error) throw new Error(`disk backup ${id} failed: ${job.error}`)
      return
    }
    if (performance.now() > deadline) throw new Error(`disk backup ${id} not done in ${JOB_TIMEOUT_MS} ms`)
    await new Promise((ok) => setTimeout(ok, JOB_POLL_MS))
  }
}

async function cleanupJobs(qmp: QmpClient, jobs: readonly DiskJob[]): Promise<void> {
  for (const j of jobs) {
    await qmp.execute('job-cancel', { id: j.job }).catch(() => {})
    await qmp.execute('job-dismiss', { id: j.job }).catch(() => {})
    await qmp.execute('blockdev-del', { 'node-name': j.target_node }).catch(() => {})
  }
}

/**
 * Writes the blocks a qcow2 backup target holds into the mirror at their disk offsets (their bytes are
 * at `offset` in the qcow2 file: the target is uncompressed and has no backing file). Returns the byte
 * ranges written, sorted.
 */
async function applyDelta(delta_file: string, mirror: string): Promise<[number, number][]> {
  const { stdout } = await promisify(execFile)(
    'qemu-img',
    ['map', '--output=json', '-f', 'qcow2', delta_file],
    {
      maxBuffer: 256 * 1024 * 1024,
    },
  )
  const entries = JSON.parse(stdout) as MapEntry[]
  const ranges: [number, number][] = []
  const source = await open(delta_file, 'r')
  const target = await open(mirror, 'r+')
  const buffer = Buffer.alloc(COPY_BYTES)
  try {
    for (const e of entries) {
      if (!e.present && !e.data) continue
      if (e.data && e.offset === undefined)
        throw new Error(`${delta_file}: block at ${e.start} has no offset`)
      for (let at = 0; at < e.length; at += COPY_BYTES) {
        const n = Math.min(COPY_BYTES, e.length - at)
        if (e.data) {
          const { bytesRead } = await source.read(buffer, 0, n, e.offset! + at)
          if (bytesRead !== n) throw new Error(`${delta_file}: short read at ${e.offset! + at}`)
        } else buffer.fill(0, 0, n)
        await target.write(buffer, 0, n, e.start + at)
      }
      const last = ranges.at(-1)
      if (last && last[1] === e.start) last[1] = e.start + e.length
      else ranges.push([e.start, e.start + e.length])
    }
    await target.sync()
  } finally {
    await source.close()
    await target.close()
  }
  return ranges
}
