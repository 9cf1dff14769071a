import { appendFile, rename, stat } from 'node:fs/promises'
import type { NodeNotice, SustainNode } from './node.ts'

/** One line of the timeline file (`sustain logs` reads them). */
export interface TimelineRecord {
  time: string
  name: string
  role: string
  term: number
  fields: Record<string, unknown>
}

/** Past this size the file moves to `.1` (replacing the one before) when a node starts. */
const ROTATE_BYTES = 4 * 1024 * 1024
/** Every few seconds on a server: in the node's log, not in the failover timeline. */
const LEFT_OUT = new Set(['snapshot_collected'])

/**
 * Appends the node's timeline notices (role changes, fault seen, detected, elected, restored, answering,
 * merges) to `path`, one JSON line each, in order, so a person can read a failover after the fact.
 * Resolves to the function that stops recording and waits for the last line.
 */
export async function recordTimeline(node: SustainNode, path: string): Promise<() => Promise<void>> {
  const size = await stat(path).then(
    (s) => s.size,
    () => 0,
  )
  if (size > ROTATE_BYTES) await rename(path, `${path}.1`)
  let written: Promise<void> = Promise.resolve()
  const unwatch = node.watch((notice: NodeNotice) => {
    if (notice.kind !== 'timeline' || LEFT_OUT.has(notice.name)) return
    const record: TimelineRecord = {
      time: new Date().toISOString(),
      name: notice.name,
      role: notice.role,
      term: notice.term,
      fields: notice.fields,
    }
    // A failed write (disk full) loses that line of history, never the node.
    written = written
      .then(() => appendFile(path, `${JSON.stringify(record)}\n`, { mode: 0o600 }))
      .catch(() => {})
  })
  return async () => {
    unwatch()
    await written
  }
}
