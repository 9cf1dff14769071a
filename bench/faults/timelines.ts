import { readFile } from 'node:fs/promises'
import { nodePaths } from '../../src/runtime/paths.ts'
import type { TimelineRecord } from '../../src/runtime/timeline-file.ts'
import type { LabNode } from './lab-federation.ts'

/** One line of a run's printed timeline. */
export interface TimelineEvent {
  /** Epoch ms (the lab's clock). */
  t: number
  who: string
  what: string
}

/** One stage a node recorded in its timeline file (`sustain logs`). */
export interface NodeEvent {
  t: number
  node: number
  name: string
  what: string
}

/**
 * Every node's timeline records between start_t and end_t, in time order. A node running under faketime
 * wrote its own wall clock: its current offset is taken back out.
 */
export async function readTimelines(nodes: LabNode[], start_t: number, end_t: number): Promise<NodeEvent[]> {
  const events: NodeEvent[] = []
  for (const node of nodes) {
    const text = await readFile(nodePaths(node.data_dir).timeline, 'utf8').catch(() => '')
    for (const line of text.split('\n')) {
      if (line === '') continue
      let record: TimelineRecord
      try {
        record = JSON.parse(line) as TimelineRecord
      } catch {
        continue // a line torn by a kill
      }
      const t = Date.parse(record.time) - node.clock_offset_ms
      if (t < start_t || t > end_t) continue
      const fields = JSON.stringify(record.fields)
      events.push({
        t,
        node: node.index,
        name: record.name,
        what: `${record.name} (${record.role}, term ${record.term}) ${fields.length > 120 ? `${fields.slice(0, 117)}...` : fields}`,
      })
    }
  }
  return events.sort((a, b) => a.t - b.t)
}
