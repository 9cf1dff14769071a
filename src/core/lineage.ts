import { assert } from './assert.ts'
import type { NodeId, Segment, SnapshotRef } from './types.ts'

export function snapshotId(writer: NodeId, term: number, seq: number): string {
  return `${writer}:${term}:${seq}`
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
): SnapshotRef {
  const continues = head !== null && head.writer === writer && head.term === term
  const seq = continues ? head.seq + 1 : 1
  const ancestors = head === null ? [] : continues ? head.lineage.slice(0, -1) : head.lineage
  assert(head === null || head.term <= term, 'snapshot term older than its parent')
  const lineage = [...ancestors, { writer, term, seq, time_ms }].slice(-max_segments)
  return { id: snapshotId(writer, term, seq), writer, term, seq, time_ms, size_bytes: 0, lineage }
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
