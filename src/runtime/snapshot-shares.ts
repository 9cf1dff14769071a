import type { SustainConfig } from '../config/schema.ts'
import { compareSnapshots } from '../core/ranking.ts'
import type { SnapshotRef } from '../core/types.ts'

/** The overlay's `snapshot-held` event: this node holds its share (`blobs`, hashes) of `blobs_total`. */
export interface SnapshotHeld {
  writer: string
  id: string
  blobs: string[]
  blobs_total: number
}

/** The overlay's replication factor for a config: 0 = every member keeps every block (`all`). */
export function overlayReplicationFactor(config: SustainConfig): number {
  const r = config.snapshots.replication_factor
  return r === 'all' ? 0 : r
}

/**
 * r-way replication: the snapshots of other writers this node holds a share of (its rendezvous
 * placement in the overlay), not a complete local copy. The core counts them as held: a restore of one
 * collects the rest from the other holders (runtime `restore` fetches what the local index lacks).
 * Kept like the local index: the newest `keep`, plus what the caller pins (restores, dead forks).
 */
export class SnapshotShares {
  private readonly refs = new Map<string, SnapshotRef>()

  add(ref: SnapshotRef): void {
    this.refs.set(ref.id, ref)
  }

  has(id: string): boolean {
    return this.refs.has(id)
  }

  get size(): number {
    return this.refs.size
  }

  /** Drops (and returns) the ids beyond the newest `keep` that are not pinned; the overlay forgets them. */
  trim(keep: number, pinned: (id: string) => boolean): string[] {
    const sorted = [...this.refs.values()].sort((a, b) => compareSnapshots(b, a))
    const drop = sorted.filter((r, i) => i >= keep && !pinned(r.id)).map((r) => r.id)
    for (const id of drop) this.refs.delete(id)
    return drop
  }
}
