/**
 * Snapshot ids are unique across servers: the writer's node key (hex), its term and a sequence number
 * within that term, e.g. `a1b2….7.42`.
 */
export interface SnapshotIdParts {
  node: string
  term: number
  seq: number
}

const NODE_RE = /^[0-9a-f]{2,128}$/

export function formatSnapshotId(parts: SnapshotIdParts): string {
  if (!NODE_RE.test(parts.node)) throw new Error(`node key must be 2-128 lowercase hex digits: ${parts.node}`)
  if (!Number.isSafeInteger(parts.term) || parts.term < 0) throw new Error(`bad term ${parts.term}`)
  if (!Number.isSafeInteger(parts.seq) || parts.seq < 0) throw new Error(`bad sequence ${parts.seq}`)
  return `${parts.node}.${parts.term}.${parts.seq}`
}

export function parseSnapshotId(id: string): SnapshotIdParts {
  const match = /^([0-9a-f]{2,128})\.(\d{1,15})\.(\d{1,15})$/.exec(id)
  if (!match) throw new Error(`not a snapshot id: ${JSON.stringify(id)}`)
  return { node: match[1]!, term: Number(match[2]), seq: Number(match[3]) }
}

export function isSnapshotId(id: string): boolean {
  return /^([0-9a-f]{2,128})\.(\d{1,15})\.(\d{1,15})$/.test(id)
}

export interface Ordered extends SnapshotIdParts {
  time_ms: number
}

/** Newer first: higher term, then higher sequence, then later time, then node key (a total order). */
export function compareNewestFirst(a: Ordered, b: Ordered): number {
  return (
    b.term - a.term ||
    b.seq - a.seq ||
    b.time_ms - a.time_ms ||
    (a.node < b.node ? 1 : a.node > b.node ? -1 : 0)
  )
}
