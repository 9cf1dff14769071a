/**
 * The planner's units and their update history from Sustain's own snapshot history: no write monitor
 * is needed, because consecutive snapshots already say which parts (files of a state directory) and
 * which chunks (of a disk image) changed between them. The monitoring period of seed 004 is then the
 * snapshot interval. Pure: it reads manifests handed to it (structurally: snapshot/manifest.ts's
 * `Manifest` fits), nothing else.
 */
import { type PrecopyUnit, probabilitiesFromHistory } from './precopy-plan.ts'

/** What the planner needs of one snapshot's manifest. */
export interface SnapshotView {
  chunk_bytes: number
  parts: readonly {
    name: string
    size_bytes: number
    /** Per chunk of `chunk_bytes`, in order: its content hash. */
    chunks: readonly { h: Uint8Array }[]
  }[]
}

export interface UnitOptions {
  /** Parts cut into one unit per chunk (a disk image); the others are one unit each (a file). */
  chunked: (part: string) => boolean
  /** Parts the service never writes (opened read-only, a backing image): sent first, never again. */
  read_only: (part: string) => boolean
}

/** `part#index` for a chunk unit, `part` for a whole-part unit. */
export function chunkUnitId(part: string, index: number): string {
  return `${part}#${index}`
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

/**
 * Which units changed from `older` to `newer`, units cut as `newer`'s parts are. A part or chunk absent
 * from `older`, of another size, or with another content hash changed. When the chunk size itself
 * differs, chunk hashes say nothing, so every unit counts as changed (over-estimating only costs order).
 */
export function changedUnits(older: SnapshotView, newer: SnapshotView, o: UnitOptions): Set<string> {
  const out = new Set<string>()
  const before = new Map(older.parts.map((p) => [p.name, p]))
  const comparable = older.chunk_bytes === newer.chunk_bytes
  for (const part of newer.parts) {
    const old = comparable ? before.get(part.name) : undefined
    if (o.chunked(part.name)) {
      part.chunks.forEach((c, i) => {
        // A content hash covers the chunk's length too: the last chunk of a resized part differs.
        const prev = old?.chunks[i]
        if (!prev || !sameBytes(prev.h, c.h)) out.add(chunkUnitId(part.name, i))
      })
    } else if (
      !old ||
      old.size_bytes !== part.size_bytes ||
      old.chunks.length !== part.chunks.length ||
      part.chunks.some((c, i) => !sameBytes(c.h, old.chunks[i]!.h))
    ) {
      out.add(part.name)
    }
  }
  return out
}

/**
 * The units of the newest snapshot with their update probability over the history (oldest first): the
 * fraction of the consecutive pairs in which each changed. One snapshot alone gives no history (every
 * probability 0).
 */
export function unitsFromSnapshots(history: readonly SnapshotView[], o: UnitOptions): PrecopyUnit[] {
  const newest = history.at(-1)
  if (!newest) throw new Error('units from snapshots: no snapshot given')
  if (!(newest.chunk_bytes > 0)) throw new Error(`units from snapshots: chunk size ${newest.chunk_bytes}`)
  const periods: Set<string>[] = []
  for (let k = 1; k < history.length; k++) periods.push(changedUnits(history[k - 1]!, history[k]!, o))
  const p = periods.length > 0 ? probabilitiesFromHistory(periods) : new Map<string, number>()
  const units: PrecopyUnit[] = []
  for (const part of newest.parts) {
    const read_only = o.read_only(part.name)
    const expected = Math.ceil(part.size_bytes / newest.chunk_bytes)
    if (part.chunks.length !== expected)
      throw new Error(
        `part ${part.name}: ${part.chunks.length} chunks for ${part.size_bytes} bytes of ${newest.chunk_bytes}-byte chunks (expected ${expected})`,
      )
    if (o.chunked(part.name)) {
      part.chunks.forEach((_, i) => {
        const id = chunkUnitId(part.name, i)
        const size_bytes = Math.min(newest.chunk_bytes, part.size_bytes - i * newest.chunk_bytes)
        units.push({ id, size_bytes, read_only, update_probability: read_only ? 0 : (p.get(id) ?? 0) })
      })
    } else {
      units.push({
        id: part.name,
        size_bytes: part.size_bytes,
        read_only,
        update_probability: read_only ? 0 : (p.get(part.name) ?? 0),
      })
    }
  }
  return units
}
