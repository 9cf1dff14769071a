import { assert } from './assert.ts'
import type { NodeId, Segment, SnapshotRef } from './types.ts'

export function snapshotId(writer: NodeId, term: number, seq: number): string {
  return `${writer}:${term}:${seq}`
}

/** The parts of a `snapshotId`; null for any other id (a merge archive's). */
export function snapshotIdParts(id: string): { writer: NodeId; term: number; seq: number } | null {
  const match = /^([0-9a-f]+):(\d{1,15}):(\d{1,15})$/.exec(id)
  return match ? { writer: match[1]!, term: Number(match[2]), seq: Number(match[3]) } : null
}

/** Whether `older` is an earlier snapshot of the same writer in the same term as `newer` (its ancestor). */
export function earlierInTerm(older: string, newer: string): boolean {
  const a = snapshotIdParts(older)
  const b = snapshotIdParts(newer)
  return a !== null && b !== null && a.writer === b.writer && a.term === b.term && a.seq < b.seq
}

/**
 * The ref of the next snapshot a server takes. Continues the current segment when the head is the
 * server's own snapshot in this term, otherwise opens a new segment whose parent is the head (the
 * snapshot the server restored from, or nothing for a fresh service).
 */
export function nextSnapshotRef(
  head: SnapshotRef | null,
  writer: NodeId,
  term: number,
  time_ms: number,
  max_segments: number,
  /** Forks merged into the service since `head` (the winner's `merged` events), carried from now on. */
  merged_in: Segment[] = [],
): SnapshotRef {
  const continues = head !== null && head.writer === writer && head.term === term
  const seq = continues ? head.seq + 1 : 1
  const ancestors = head === null ? [] : continues ? head.lineage.slice(0, -1) : head.lineage
  assert(head === null || head.term <= term, 'snapshot term older than its parent')
  const lineage = [...ancestors, { writer, term, seq, time_ms }].slice(-max_segments)
  const ref: SnapshotRef = {
    id: snapshotId(writer, term, seq),
    writer,
    term,
    seq,
    time_ms,
    size_bytes: 0,
    lineage,
  }
  const merged = mergedSegments(lineage, [...(head?.merged ?? []), ...merged_in], max_segments)
  if (merged.length > 0) ref.merged = merged
  return ref
}

/** The segments a snapshot's state holds: its lineage and the forks merged into it. */
export function closure(ref: SnapshotRef | null): Segment[] {
  if (ref === null) return []
  return ref.merged ? [...ref.lineage, ...ref.merged] : ref.lineage
}

/** `ref` is in `segments` (a closure): some segment of its writer and term reaches its seq. */
export function covers(segments: Segment[], ref: SnapshotRef): boolean {
  return segments.some((s) => s.writer === ref.writer && s.term === ref.term && s.seq >= ref.seq)
}

/**
 * The closure segments of `fork` (a merged head, with its own ancestry and merges) as merged segments
 * beside `lineage`: one per writer and term (the highest seq), none that `lineage` already covers, the
 * newest terms kept when over `max_segments`.
 */
export function mergedSegments(lineage: Segment[], extra: Segment[], max_segments: number): Segment[] {
  const by_key = new Map<string, Segment>()
  for (const s of extra) {
    const key = `${s.writer}:${s.term}`
    const have = by_key.get(key)
    if (have === undefined || s.seq > have.seq) by_key.set(key, s)
  }
  const out = [...by_key.values()].filter(
    (s) => !lineage.some((l) => l.writer === s.writer && l.term === s.term && l.seq >= s.seq),
  )
  out.sort((a, b) => a.term - b.term || a.seq - b.seq || (a.writer < b.writer ? -1 : 1))
  return out.slice(-max_segments)
}

export interface ForkPoint {
  id: string
  time_ms: number
}

/**
 * Newest snapshot common to two lineages, or null when they share none (within the kept segments).
 * Both lineages are prefix-closed: holding writer:term:k means holding writer:term:1..k. So for each
 * segment present in both, the common part ends at the smaller seq; the newest such point wins.
 */
export function forkPoint(a: Segment[], b: Segment[]): ForkPoint | null {
  let fork: (Segment & { id: string }) | null = null
  for (const sa of a) {
    for (const sb of b) {
      if (sa.writer !== sb.writer || sa.term !== sb.term) continue
      const common = sa.seq <= sb.seq ? sa : sb
      if (fork === null || common.term > fork.term || (common.term === fork.term && common.seq > fork.seq)) {
        fork = { ...common, id: snapshotId(common.writer, common.term, common.seq) }
      }
    }
  }
  return fork === null ? null : { id: fork.id, time_ms: fork.time_ms }
}
