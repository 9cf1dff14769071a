import type { NodeId, Role, SnapshotRef, Strategy } from './types.ts'

/** What the election compares about a node; built from the peer table or the node itself. */
export interface Contender {
  id: NodeId
  priority: number
  load: number
  snapshot: SnapshotRef | null
  /**
   * `capacity`: false when the node reported less free disk (`room_bytes`) than the image of the
   * snapshot the election restores; such a node is never elected (NodeCore leaves it out). Absent: true.
   */
  room?: boolean
  /**
   * `capacity`: the node's site label equals the site of the server that wrote that snapshot (the
   * failed one, as a rule): at a near-tie of load another site wins (anti-affinity). Absent: false.
   */
  same_site?: boolean
}

/**
 * `capacity`: loads in the same step of this width are a near-tie, decided by site before the exact
 * load. Load figures are (use + 1) / weight in steps of 0.05 (runtime/load-figure.ts): 0.1 is two steps.
 * A step, not a distance, so the order stays total (the same on every node).
 */
export const SITE_TIE_LOAD = 0.1

/** `capacity`: what a node needs to be elected: room for the image of the snapshot to restore, and whose site that is. */
export interface CapacityNeed {
  bytes: number
  /** The snapshot's writer (the failed server, as a rule) and its site. */
  writer: NodeId
  site: string | null
}

/**
 * The need an election that restores `snapshot` sets: its image (or, for a snapshot stored before
 * images were recorded, its own bytes: a lower bound). `checks_room` false: a planted bug ignores room.
 */
export function capacityNeed(snapshot: SnapshotRef, checks_room = true): CapacityNeed {
  return {
    bytes: checks_room ? (snapshot.image_bytes ?? snapshot.size_bytes) : 0,
    writer: snapshot.writer,
    site: snapshot.writer_site ?? null,
  }
}

/** Roles whose node already holds the service's state on its disk (its room is in use by it). */
const HOLDS_STATE: ReadonlySet<Role> = new Set<Role>(['restoring', 'server', 'merging', 'leaving'])

/**
 * A contender's room and site flags under `need` (null: not `capacity`, or nothing to restore).
 * - room: a node that did not report it has enough; one that restores or serves is not judged (its
 *   state takes its room, and a serving node must not be outranked by its own state's size);
 * - same site: the writer itself is not "at the failed server's site" (a live server compared with
 *   candidates for preemption would otherwise lose to any other site).
 */
export function capacityFlags(
  node: { id: NodeId; room_bytes: number | null; site: string | null; role: Role },
  need: CapacityNeed | null,
): Pick<Contender, 'room' | 'same_site'> {
  if (need === null) return {}
  return {
    room: HOLDS_STATE.has(node.role) || node.room_bytes === null || node.room_bytes >= need.bytes,
    same_site: node.site !== null && node.site === need.site && node.id !== need.writer,
  }
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

/**
 * `capacity`: room for the snapshot first, then the lower load step, then another site than the failed
 * server's, then the lower exact load. Positive when `a` outranks `b`; 0 defers to the static rank.
 */
export function compareCapacity(a: Contender, b: Contender): number {
  const room_a = a.room !== false
  if (room_a !== (b.room !== false)) return room_a ? 1 : -1
  const step_a = loadStep(a.load)
  const step_b = loadStep(b.load)
  if (step_a !== step_b) return step_b - step_a
  const same_a = a.same_site === true
  if (same_a !== (b.same_site === true)) return same_a ? -1 : 1
  return b.load - a.load
}

function loadStep(load: number): number {
  // The small epsilon keeps a figure such as 1.1 (1.1000000000000001 after rounding) in its own step.
  return Math.floor(load / SITE_TIE_LOAD + 1e-9)
}

/** Positive when `a` should be elected before `b` under `strategy`. Total order: only equal ids tie. */
export function compareContenders(strategy: Strategy, a: Contender, b: Contender): number {
  if (strategy === 'freshest') {
    const by_snapshot = compareSnapshots(a.snapshot, b.snapshot)
    if (by_snapshot !== 0) return by_snapshot
  } else if (strategy === 'capacity') {
    const by_capacity = compareCapacity(a, b)
    if (by_capacity !== 0) return by_capacity
  }
  return compareStatic(a, b)
}

export function best(strategy: Strategy, contenders: Contender[]): Contender | null {
  let top: Contender | null = null
  for (const c of contenders) if (top === null || compareContenders(strategy, c, top) > 0) top = c
  return top
}
