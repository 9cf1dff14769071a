import type { NodeId, SnapshotRef, Strategy } from './types.ts'

/** What the election compares about a node; built from the peer table or the node itself. */
export interface Contender {
  id: NodeId
  priority: number
  load: number
  snapshot: SnapshotRef | null
}

/** Orders snapshots by (term, seq, writer): later terms descend from earlier ones. */
export function compareSnapshots(a: SnapshotRef | null, b: SnapshotRef | null): number {
  if (a === b) return 0
  if (a === null) return -1
  if (b === null) return 1
  if (a.term !== b.term) return a.term - b.term
  if (a.seq !== b.seq) return a.seq - b.seq
  return a.writer < b.writer ? -1 : a.writer > b.writer ? 1 : 0
}

/** Static rank: higher priority first; ties go to the smaller node key. Positive when `a` outranks `b`. */
export function compareStatic(a: Contender, b: Contender): number {
  if (a.priority !== b.priority) return a.priority - b.priority
  return a.id < b.id ? 1 : a.id > b.id ? -1 : 0
}

/** Positive when `a` should be elected before `b` under `strategy`. Total order: only equal ids tie. */
export function compareContenders(strategy: Strategy, a: Contender, b: Contender): number {
  if (strategy === 'freshest') {
    const by_snapshot = compareSnapshots(a.snapshot, b.snapshot)
    if (by_snapshot !== 0) return by_snapshot
  } else if (strategy === 'capacity') {
    if (a.load !== b.load) return b.load - a.load
  }
  return compareStatic(a, b)
}

export function best(strategy: Strategy, contenders: Contender[]): Contender | null {
  let top: Contender | null = null
  for (const c of contenders) if (top === null || compareContenders(strategy, c, top) > 0) top = c
  return top
}
