import { createHash } from 'node:crypto'
import { readFile, rm } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { writeFileAtomic } from '../../lib/atomic-write.ts'
import { directoryImageWriter, imageBytes, type SnapshotStore } from '../../snapshot/index.ts'
import { best, type Contender } from '../core/ranking.ts'
import type { PeerInfo, Strategy } from '../core/types.ts'

/**
 * Warm standby (config `service.standby: warm`): the candidate the election would pick first keeps the
 * newest snapshot it collected decoded into a directory beside the service's state directory, so a
 * failover to it swaps that directory in (two renames) instead of decoding the snapshot.
 *
 * Never stale: the copy is adopted only when the marker written after it names exactly the snapshot the
 * core chose (core id and engine id) and the sha256 of that snapshot's manifest in the store now equals
 * the one recorded when the copy was decoded; anything else is the normal restore. The marker is removed
 * before a new copy is written and written (atomically) only after the copy is complete, so a marker on
 * disk always describes the directory beside it, across crashes too.
 *
 * Cost: one more copy of the state on disk, and one full decode (a restore's CPU and writes) per
 * snapshot collected while this node is the top candidate; decodes coalesce to the newest, one at a time.
 */
export interface WarmMarker {
  id: string
  engine_id: string
  manifest_sha256: string
  bytes: number
  decode_ms: number
}

export type WarmOutcome =
  | { used: true; marker: WarmMarker }
  | { used: false; reason: 'none' | 'stale' | 'changed' | 'preparing'; warm_id: string | null }

export interface WarmStandbyOptions {
  /** The service's state directory; the copy lives beside it (same filesystem: a rename adopts it). */
  state_dir: string
  store: SnapshotStore
  now: () => number
}

export function warmPaths(state_dir: string) {
  return { dir: join(dirname(state_dir), 'warm'), marker: join(dirname(state_dir), 'warm.json') }
}

/** Would this node be elected first among the reachable eligible candidates (the core's ranking)? */
export function isTopCandidate(
  strategy: Strategy,
  self: Contender,
  peers: PeerInfo[],
  now_ms: number,
): boolean {
  const contenders: Contender[] = [self]
  for (const p of peers) {
    if (!p.reachable || now_ms < p.ineligible_until_ms) continue
    if (p.role === 'candidate' || p.role === 'electing' || p.role === 'restoring')
      contenders.push({ id: p.id, priority: p.priority, load: p.load, snapshot: p.snapshot })
  }
  return best(strategy, contenders)?.id === self.id
}

async function manifestSha256(store: SnapshotStore, engine_id: string): Promise<string | null> {
  const bytes = await store.getManifestBytes(engine_id)
  return bytes ? createHash('sha256').update(bytes).digest('hex') : null
}

export class WarmStandby {
  private readonly paths: { dir: string; marker: string }
  /** The decode in flight (at most one) and the newest snapshot asked for meanwhile. */
  private running: Promise<void> | null = null
  private wanted: { id: string; engine_id: string } | null = null
  /** Bumped by take(): a decode that finds it changed throws its result away. */
  private generation = 0
  /** Engine ids a decode reads now: garbage collection must keep them. */
  readonly pinned = new Set<string>()

  constructor(private readonly options: WarmStandbyOptions) {
    this.paths = warmPaths(options.state_dir)
  }

  /**
   * Decode `id` into the warm directory (after the decode in flight, if any; only the newest asked for
   * is decoded). Resolves with the marker once this call's decode is done, null if it was superseded.
   */
  prepare(id: string, engine_id: string): Promise<WarmMarker | null> {
    this.wanted = { id, engine_id }
    const generation = this.generation
    const run = async (): Promise<WarmMarker | null> => {
      while (this.running) await this.running
      if (this.wanted?.id !== id || generation !== this.generation) return null
      this.wanted = null
      const work = this.decode(id, engine_id, generation)
      this.running = work.then(
        () => {},
        () => {},
      )
      try {
        return await work
      } finally {
        this.running = null
      }
    }
    return run()
  }

  private async decode(id: string, engine_id: string, generation: number): Promise<WarmMarker | null> {
    const sha = await manifestSha256(this.options.store, engine_id)
    if (sha === null) throw new Error(`warm standby: snapshot ${id} is not in the store`)
    this.pinned.add(engine_id)
    const started = this.options.now()
    try {
      await rm(this.paths.marker, { force: true })
      const writer = directoryImageWriter(this.paths.dir)
      const manifest = await this.options.store.restore(engine_id, {
        openPart: (name) => writer.openPart(name),
        // Checked right before the swap: once a take() began, the warm directory is its alone (the
        // marker was removed above, before that take could read it, or the take found nothing).
        commit: async () => {
          if (generation !== this.generation) throw new WarmSuperseded()
          await writer.commit()
        },
        abort: () => writer.abort(),
      })
      if (generation !== this.generation) return null
      const marker: WarmMarker = {
        id,
        engine_id,
        manifest_sha256: sha,
        bytes: imageBytes(manifest),
        decode_ms: Math.round(this.options.now() - started),
      }
      await writeFileAtomic(this.paths.marker, `${JSON.stringify(marker)}\n`)
      return marker
    } catch (error) {
      if (error instanceof WarmSuperseded) return null
      throw error
    } finally {
      this.pinned.delete(engine_id)
    }
  }

  /**
   * The warm copy for the restore of `id`, if it is exactly that snapshot: `adopt` gets its directory
   * (and moves it away). Any decode in flight is abandoned: a restore does not wait for a standby.
   */
  async take(id: string, engine_id: string, adopt: (dir: string) => Promise<void>): Promise<WarmOutcome> {
    this.generation++
    this.wanted = null
    const marker = await readMarker(this.paths.marker)
    if (marker === null) return { used: false, reason: this.running ? 'preparing' : 'none', warm_id: null }
    if (marker.id !== id || marker.engine_id !== engine_id)
      return { used: false, reason: 'stale', warm_id: marker.id }
    if ((await manifestSha256(this.options.store, engine_id)) !== marker.manifest_sha256)
      return { used: false, reason: 'changed', warm_id: marker.id }
    // The marker goes first: if adopting fails half way, no marker can vouch for what is left.
    await rm(this.paths.marker, { force: true })
    await adopt(this.paths.dir)
    return { used: true, marker }
  }

  /** What is prepared now (null: nothing). */
  current(): Promise<WarmMarker | null> {
    return readMarker(this.paths.marker)
  }
}

class WarmSuperseded extends Error {
  constructor() {
    super('warm standby decode superseded by a restore')
  }
}

async function readMarker(path: string): Promise<WarmMarker | null> {
  const text = await readFile(path, 'utf8').catch(() => null)
  if (text === null) return null
  try {
    const m = JSON.parse(text) as Partial<WarmMarker>
    if (typeof m.id !== 'string' || typeof m.engine_id !== 'string' || typeof m.manifest_sha256 !== 'string')
      return null
    return m as WarmMarker
  } catch {
    return null
  }
}
