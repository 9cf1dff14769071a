import { readFile } from 'node:fs/promises'
import { nodePaths } from '../../config/data-dir.ts'
import type { TimelineRecord } from '../../runtime/timeline-file.ts'
import { CliError } from '../../util/cli-error.ts'

/** A field as a person reads it: keys shortened like `status` shows them, objects as JSON. */
function value(v: unknown): string {
  if (typeof v === 'string') return /^[0-9a-f]{64}$/.test(v) ? v.slice(0, 8) : v
  return typeof v === 'object' && v !== null ? JSON.stringify(v) : String(v)
}

/** One line per record: local time, milliseconds since the record before, stage, role and term, fields. */
export function formatTimeline(records: TimelineRecord[]): string {
  const width = Math.max(0, ...records.map((r) => r.name.length))
  let previous_ms: number | null = null
  return records
    .map((r) => {
      const at_ms = Date.parse(r.time)
      const since = previous_ms === null ? '' : `+${at_ms - previous_ms} ms`
      previous_ms = at_ms
      const fields = Object.entries(r.fields)
        .map(([k, v]) => `${k}=${value(v)}`)
        .join(' ')
      const time = new Date(at_ms).toISOString().replace('T', ' ').replace('Z', '')
      return `${time} ${since.padStart(11)}  ${r.name.padEnd(width)}  ${r.role} term ${r.term}  ${fields}`.trimEnd()
    })
    .map((line) => `${line}\n`)
    .join('')
}

export async function printTimeline(data: string, lines: number, json: boolean): Promise<void> {
  const path = nodePaths(data).timeline
  const text = await readFile(path, 'utf8').catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT')
      throw new CliError(`no timeline at ${path}: this node has not run \`sustain join\` yet`)
    throw error
  })
  // A line cut by a crash mid-write is skipped, not an error: the rest of the history still reads.
  const records = text
    .split('\n')
    .filter(Boolean)
    .flatMap((line) => {
      try {
        return [JSON.parse(line) as TimelineRecord]
      } catch {
        return []
      }
    })
    .slice(-lines)
  process.stdout.write(json ? records.map((r) => `${JSON.stringify(r)}\n`).join('') : formatTimeline(records))
}
