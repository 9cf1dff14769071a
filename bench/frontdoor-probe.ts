/**
 * Where an SMTP transaction's milliseconds go, per path (issue 17's added-latency target): a 3-node
 * federation as bench:frontdoor starts it, then N rounds of one raw SMTP transaction each to the service
 * directly, through the server's front door and through a candidate's, timestamping every reply
 * (connect, 220 greeting, EHLO, MAIL, RCPT, DATA 354, the 250 after the message, QUIT 221, close).
 * Prints the median of each stage per path and the median of per-round differences against direct.
 * Not a results file: a diagnostic (the figures of record come from bench:frontdoor).
 * Usage: bash test/loopback-only.sh npx tsx bench/frontdoor-probe.ts [--rounds N]
 */

import { mkdtemp, rm } from 'node:fs/promises'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { parseArgs } from 'node:util'
import { LocalFederation } from '../src/demo/local-federation.ts'

const { values } = parseArgs({
  options: { rounds: { type: 'string', default: '30' }, 'snapshot-ms': { type: 'string', default: '500' } },
})
const ROUNDS = Number(values.rounds)
/** bench:frontdoor's latency federation snapshots every 500 ms (each one pauses the service). */
const SNAPSHOT_MS = Number(values['snapshot-ms'])

const STAGES = ['connect', 'greeting', 'ehlo', 'mail', 'rcpt', 'data', 'queued', 'quit', 'closed'] as const
type Stage = (typeof STAGES)[number]

/** One transaction; returns ms since start at which each stage completed. */
async function rawTransaction(host: string, port: number, n: number): Promise<Record<Stage, number>> {
  const t0 = performance.now()
  const at = {} as Record<Stage, number>
  const socket = net.connect({ host, port })
  socket.setNoDelay(true)
  let buffer = ''
  let waiting: ((line: string) => void) | null = null
  const lines: string[] = []
  socket.setEncoding('utf8')
  socket.on('data', (text: string) => {
    buffer += text
    for (let i = buffer.indexOf('\r\n'); i !== -1; i = buffer.indexOf('\r\n')) {
      const line = buffer.slice(0, i)
      buffer = buffer.slice(i + 2)
      if (/^\d{3} /.test(line)) {
        if (waiting) {
          const w = waiting
          waiting = null
          w(line)
        } else lines.push(line)
      }
    }
  })
  const closed = new Promise<void>((resolve, reject) => {
    socket.once('close', () => resolve())
    socket.once('error', reject)
  })
  const reply = () =>
    new Promise<string>((resolve) => {
      const queued = lines.shift()
      if (queued !== undefined) resolve(queued)
      else waiting = resolve
    })
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()))
  at.connect = performance.now() - t0
  const expect = async (stage: Stage, code: string) => {
    const line = await reply()
    if (!line.startsWith(code)) throw new Error(`${stage}: ${line}`)
    at[stage] = performance.now() - t0
  }
  await expect('greeting', '220')
  socket.write('EHLO probe.localhost\r\n')
  await expect('ehlo', '250')
  socket.write('MAIL FROM:<bench@example.org>\r\n')
  await expect('mail', '250')
  socket.write('RCPT TO:<bench@example.org>\r\n')
  await expect('rcpt', '250')
  socket.write('DATA\r\n')
  await expect('data', '354')
  socket.write(`Subject: p-${n}\r\n\r\nx\r\n.\r\n`)
  await expect('queued', '250')
  socket.write('QUIT\r\n')
  await expect('quit', '221')
  socket.end()
  await closed
  at.closed = performance.now() - t0
  return at
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  return Math.round(s[Math.floor((s.length - 1) / 2)]! * 100) / 100
}

const dir = await mkdtemp(join(tmpdir(), 'sustain-frontdoor-probe-'))
const fed = new LocalFederation({
  dir,
  nodes: 3,
  priorities: [30, 20, 10],
  snapshot_interval_ms: SNAPSHOT_MS,
  front_door: {},
})
const release = fed.stopOnSignals()
try {
  await fed.start()
  const server = await fed.server(60_000)
  const entry = fed.nodes.filter((n) => n !== server).at(-1)!
  const paths = {
    direct: { host: '127.0.0.1', port: server.port },
    via_server: server.front_door!,
    via_candidate: entry.front_door!,
  }
  type Path = keyof typeof paths
  const samples: Record<Path, Record<Stage, number>[]> = { direct: [], via_server: [], via_candidate: [] }
  for (let i = 0; i < 3; i++)
    for (const p of Object.keys(paths) as Path[]) await rawTransaction(paths[p].host, paths[p].port, -1) // warm
  for (let i = 0; i < ROUNDS; i++) {
    for (const p of Object.keys(paths) as Path[])
      samples[p].push(await rawTransaction(paths[p].host, paths[p].port, i))
  }
  // Per stage: the stage's own duration (from the previous stage), median per path, and the median of
  // per-round differences against direct.
  const rows: string[] = []
  rows.push(['stage', 'direct', 'via_server', 'd(server)', 'via_candidate', 'd(candidate)'].join('\t'))
  for (const [k, stage] of STAGES.entries()) {
    const dur = (s: Record<Stage, number>) => s[stage] - (k === 0 ? 0 : s[STAGES[k - 1]!])
    const d = (p: Path) => samples[p].map(dur)
    const diff = (p: Path) => median(samples[p].map((s, i) => dur(s) - dur(samples.direct[i]!)))
    rows.push(
      [
        stage,
        median(d('direct')),
        median(d('via_server')),
        diff('via_server'),
        median(d('via_candidate')),
        diff('via_candidate'),
      ].join('\t'),
    )
  }
  const total = (p: Path) => samples[p].map((s) => s.queued)
  rows.push(
    [
      'to 250',
      median(total('direct')),
      median(total('via_server')),
      median(samples.via_server.map((s, i) => s.queued - samples.direct[i]!.queued)),
      median(total('via_candidate')),
      median(samples.via_candidate.map((s, i) => s.queued - samples.direct[i]!.queued)),
    ].join('\t'),
  )
  process.stdout.write(`${rows.join('\n')}\n`)
} finally {
  release()
  await fed.stop()
  await rm(dir, { recursive: true, force: true })
}
