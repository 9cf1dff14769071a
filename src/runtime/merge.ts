import { createHash } from 'node:crypto'
import { createReadStream, createWriteStream } from 'node:fs'
import { mkdir, open, readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { Packr } from 'msgpackr'
import { EXIT_UNKNOWN_VERB, HELPER_TIMEOUTS_MS, mergeEnv, sinceArgs } from '../../helpers/index.ts'
import type { Logger } from '../../lib/log.ts'
import type { Federation } from '../../overlay/index.ts'
import type { ForkPoint } from '../core/lineage.ts'
import type { MergeOfferMessage, MergeResultMessage } from '../core/messages.ts'
import type { SnapshotRef } from '../core/types.ts'
import type { ServiceDriver } from '../drivers/driver.ts'

/** An archive travels as blobs of at most 1 MiB in the loser's hypercore, like snapshot data. */
const ARCHIVE_CHUNK_BYTES = 1024 * 1024
const packr = new Packr({ useRecords: false })

export type MergeOutcome = { ok: true } | { ok: false; reason: string } | { ok: 'unsupported' }

interface ArchiveManifest {
  kind: 'merge-archive'
  fork_id: string | null
  fork_time_ms: number
  /** Chunk hashes in archive order (the overlay dedupes blobs, the order lives here). */
  chunks: string[]
  bytes: number
}

export interface MergeDeps {
  federation: Federation
  /** Runs work on the service with the node's driver queue. */
  onDriver: <T>(work: (driver: ServiceDriver) => Promise<T>) => Promise<T>
  work_dir: string
  log: Logger
  term: () => number
  self_key: string
  peer_name: (peer: string) => string | undefined
  control_socket: string
}

/**
 * Moves a heal loser's changes to the winner through the service's helper: the loser runs `archive
 * --since FORK`, publishes the archive to its own hypercore and offers it; the winner collects it (every
 * chunk checked by hash), runs `merge --since FORK` with the archive on stdin and answers. Only an
 * answered success lets the loser step down; any failure is retried by the core with the loser's state
 * intact. Merge helpers are idempotent, so a retry never duplicates.
 */
export class MergeCoordinator {
  private readonly waiting = new Map<string, (result: MergeResultMessage) => void>()
  private readonly applied = new Set<string>()

  constructor(private readonly deps: MergeDeps) {}

  /** Loser side. Resolves when the winner answered (or the attempt failed here). */
  async offer(
    winner: string,
    fork: ForkPoint | null,
    attempt: number,
    head: SnapshotRef | null = null,
    dead_fork = false,
  ): Promise<MergeOutcome> {
    const { deps } = this
    const id = `merge:${deps.self_key.slice(0, 16)}:${deps.term()}:${attempt}:${Date.now()}`
    const dir = join(deps.work_dir, 'merge-out')
    await mkdir(dir, { recursive: true })
    const file = join(dir, `${attempt}.archive`)
    const fork_time_ms = Math.floor(fork?.time_ms ?? 0)
    const started = Date.now()
    const archived = await deps.onDriver(async (driver) => {
      // Nothing new may be acknowledged here after the archive is cut: stop the service first.
      await driver.stop('merge')
      const out = createWriteStream(file)
      const result = await driver.helper('archive', sinceArgs(fork_time_ms), {
        stdout: out,
        env: this.env(winner, fork?.id ?? null, fork_time_ms),
        timeout_ms: HELPER_TIMEOUTS_MS.archive,
      })
      await new Promise<void>((resolve, reject) => {
        if (out.writableFinished) resolve()
        else out.once('finish', resolve).once('error', reject)
        out.end()
      })
      return result
    })
    if (archived.code === EXIT_UNKNOWN_VERB) return { ok: 'unsupported' }
    if (archived.code !== 0)
      return { ok: false, reason: `archive helper failed (${archived.code}): ${archived.stderr.trim()}` }
    const chunks = await chunkFile(file)
    const bytes = chunks.reduce((sum, c) => sum + c.size, 0)
    const manifest: ArchiveManifest = {
      kind: 'merge-archive',
      fork_id: fork?.id ?? null,
      fork_time_ms,
      chunks: chunks.map((c) => c.hash),
      bytes,
    }
    const handle = await open(file, 'r')
    try {
      const where = new Map(chunks.map((c) => [c.hash, c]))
      await deps.federation.publish(
        // An archive, not a snapshot: only the winner collects it (others neither fetch nor index it).
        { id, manifest: packr.pack(manifest), blobs: manifest.chunks, kind: 'archive' },
        async (hash) => {
          const chunk = where.get(hash)!
          const buffer = Buffer.alloc(chunk.size)
          await handle.read(buffer, 0, chunk.size, chunk.offset)
          return buffer
        },
      )
    } finally {
      await handle.close()
    }
    deps.log.info(
      { event: 'merge_archive', id, bytes, winner, ms: Date.now() - started },
      'merge archive offered',
    )
    const answer = new Promise<MergeResultMessage>((resolve) => this.waiting.set(id, resolve))
    const offer: MergeOfferMessage = {
      type: 'merge-offer',
      term: deps.term(),
      id,
      fork_id: fork?.id ?? null,
      fork_time_ms,
      bytes,
      head,
      ...(dead_fork ? { dead_fork } : {}),
    }
    if (!deps.federation.send(winner, offer)) {
      this.waiting.delete(id)
      return { ok: false, reason: 'winner not connected' }
    }
    const result = await withDeadline(answer, 15 * 60_000).finally(() => this.waiting.delete(id))
    await deps.federation.forget([id]).catch(() => {})
    await rm(file, { force: true })
    if (result === null) return { ok: false, reason: 'no answer from the winner' }
    return result.ok ? { ok: true } : { ok: false, reason: result.reason ?? 'merge failed on the winner' }
  }

  private env(peer: string, fork_id: string | null, fork_time_ms: number): Record<string, string> {
    const { deps } = this
    return mergeEnv({
      fork_id,
      fork_time_ms,
      peer,
      peer_name: deps.peer_name(peer) ?? null,
      control_socket: deps.control_socket,
    })
  }

  /** Loser side: the winner's answer to an offer. */
  onResult(msg: MergeResultMessage): void {
    this.waiting.get(msg.id)?.(msg)
  }

  /** Winner side: collect the archive and run the merge helper against the running service. */
  async accept(from: string, msg: MergeOfferMessage, serving: boolean): Promise<MergeResultMessage> {
    const { deps } = this
    const answer = (ok: boolean, reason?: string): MergeResultMessage => ({
      type: 'merge-result',
      term: deps.term(),
      id: msg.id,
      ok,
      ...(reason ? { reason } : {}),
    })
    if (!serving) return answer(false, 'this node does not serve')
    if (this.applied.has(msg.id)) return answer(true)
    const dir = join(
      deps.work_dir,
      'merge-in',
      createHash('sha256').update(msg.id).digest('hex').slice(0, 16),
    )
    await mkdir(dir, { recursive: true })
    const started = Date.now()
    try {
      const collected = await deps.federation.collect(from, msg.id, async (hash, bytes) => {
        await writeFile(join(dir, hash), bytes)
      })
      const manifest = packr.unpack(collected.manifest) as ArchiveManifest
      if (manifest?.kind !== 'merge-archive' || !Array.isArray(manifest.chunks)) {
        return answer(false, 'malformed merge archive')
      }
      const stdin = Readable.from(
        (async function* () {
          for (const hash of manifest.chunks) yield await readFile(join(dir, hash))
        })(),
      )
      const result = await deps.onDriver((driver) =>
        driver.helper('merge', sinceArgs(manifest.fork_time_ms), {
          stdin,
          env: this.env(from, manifest.fork_id, manifest.fork_time_ms),
          timeout_ms: HELPER_TIMEOUTS_MS.merge,
        }),
      )
      if (result.code !== 0)
        return answer(false, `merge helper failed (${result.code}): ${result.stderr.trim()}`)
      this.applied.add(msg.id)
      deps.log.info(
        { event: 'merge_applied', id: msg.id, from, bytes: manifest.bytes, ms: Date.now() - started },
        'merge applied',
      )
      return answer(true)
    } catch (error) {
      return answer(false, String((error as Error).message ?? error))
    } finally {
      await rm(dir, { recursive: true, force: true })
      await deps.federation.forget([msg.id]).catch(() => {})
    }
  }
}

async function chunkFile(path: string): Promise<Array<{ hash: string; offset: number; size: number }>> {
  const chunks: Array<{ hash: string; offset: number; size: number }> = []
  let offset = 0
  await pipeline(createReadStream(path, { highWaterMark: ARCHIVE_CHUNK_BYTES }), async (source) => {
    let pending: Buffer = Buffer.alloc(0)
    const emit = (buffer: Buffer) => {
      chunks.push({
        hash: createHash('sha256').update(buffer).digest('hex'),
        offset,
        size: buffer.byteLength,
      })
      offset += buffer.byteLength
    }
    for await (const data of source as AsyncIterable<Buffer>) {
      pending = pending.byteLength === 0 ? data : Buffer.concat([pending, data])
      while (pending.byteLength >= ARCHIVE_CHUNK_BYTES) {
        emit(pending.subarray(0, ARCHIVE_CHUNK_BYTES))
        pending = pending.subarray(ARCHIVE_CHUNK_BYTES)
      }
    }
    if (pending.byteLength > 0) emit(pending)
  })
  return chunks
}

async function withDeadline<T>(promise: Promise<T>, ms: number): Promise<T | null> {
  let timer: NodeJS.Timeout | undefined
  const deadline = new Promise<null>((resolve) => {
    timer = setTimeout(() => resolve(null), ms)
  })
  try {
    return await Promise.race([promise, deadline])
  } finally {
    clearTimeout(timer)
  }
}
