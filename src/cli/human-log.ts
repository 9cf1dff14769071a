import { Writable } from 'node:stream'

const LEVELS: Record<number, string> = {
  10: 'trace',
  20: 'debug',
  30: 'info',
  40: 'WARN',
  50: 'ERROR',
  60: 'FATAL',
}
const SKIP = new Set(['level', 'time', 'mono_ms', 'pid', 'hostname', 'name', 'msg', 'event', 'module'])

/**
 * Turns the node's JSON log lines into one readable line each for a person at a terminal:
 * `12:03:04.512 elected  term=3 snapshot=…`. `--json` bypasses this and keeps the records as they are.
 */
export function humanLogStream(out: NodeJS.WritableStream = process.stderr): Writable {
  let pending = ''
  return new Writable({
    write(chunk, _encoding, done) {
      pending += chunk.toString()
      for (let i = pending.indexOf('\n'); i >= 0; i = pending.indexOf('\n')) {
        const line = pending.slice(0, i)
        pending = pending.slice(i + 1)
        out.write(`${format(line)}\n`)
      }
      done()
    },
  })
}

function format(line: string): string {
  let record: Record<string, unknown>
  try {
    record = JSON.parse(line) as Record<string, unknown>
  } catch {
    return line
  }
  const time = new Date(Number(record.time)).toISOString().slice(11, 23)
  const level = LEVELS[Number(record.level)] ?? ''
  const what = String(record.event ?? record.msg ?? '')
  const fields = Object.entries(record)
    .filter(([key]) => !SKIP.has(key))
    .map(([key, value]) => {
      const text = typeof value === 'string' ? value : JSON.stringify(value)
      return `${key}=${text.length > 80 ? `${text.slice(0, 77)}...` : text}`
    })
  const prefix = level === 'info' ? '' : `${level} `
  const msg = record.event && record.msg && record.msg !== record.event ? `  (${record.msg})` : ''
  return `${time} ${prefix}${what.padEnd(18)} ${fields.join(' ')}${msg}`
}
