/**
 * Where a client's outage after SIGKILL of the server goes (issue 17): one run of bench:frontdoor's
 * outage scenario (3 node processes, examples/mail, a client that knows one candidate's front door),
 * printed as one timeline from the kill: every node's stages (peer down, suspected, elected, restored,
 * service answering), each front door's route changes and held connections forwarded, and the client's
 * attempts. Times are wall-clock ms (one machine, so the processes share the clock), relative to the kill.
 * Prints; keeps nothing (bench:frontdoor is the measurement).
 * Usage: bash test/loopback-only.sh npx tsx bench/frontdoor-timeline.ts [--runs N]
 */

import { loadavg } from 'node:os'
import { parseArgs } from 'node:util'
import type { LogRecord } from '../src/demo/local-federation.ts'
import { MailLoop } from '../src/demo/mail-loop.ts'
import { withOneDoorFederation } from './frontdoor-scenario.ts'

const { values } = parseArgs({ options: { runs: { type: 'string', default: '1' } } })
const RUNS = Math.max(1, Math.min(20, Number(values.runs)))

/** Records that mark a failover stage (by `event`, or by message for the overlay's unnamed ones). */
const EVENTS = new Set([
  'server_suspected',
  'role_changed',
  'elected',
  'claim_refused',
  'restored',
  'service_started',
  'service_answering',
  'front_door_route',
  'front_door_held_forwarded',
  'front_door_expired',
  'front_door_refused',
  'snapshot_taken',
])
const MESSAGES = [/^peer down/, /^peer gone/, /^data lane ended/]

function interesting(r: LogRecord): boolean {
  if (r.event !== undefined && EVENTS.has(r.event)) return true
  if (r.stream === 'stdout' && typeof r.msg === 'string' && r.msg.includes('listening')) return true
  return typeof r.msg === 'string' && MESSAGES.some((m) => m.test(r.msg as string))
}

const DETAIL_KEYS = [
  'start_to_answering_ms',
  'from',
  'to',
  'reason',
  'route',
  'held_ms',
  'holds',
  'where',
  'verdict',
  'server',
]

function detail(r: LogRecord): string {
  return DETAIL_KEYS.filter((k) => r[k] !== undefined)
    .map((k) => `${k}=${typeof r[k] === 'string' ? (r[k] as string).slice(0, 16) : JSON.stringify(r[k])}`)
    .join(' ')
}

async function waitFor(test: () => boolean, timeout_ms: number, what: string): Promise<void> {
  const deadline = Date.now() + timeout_ms
  while (!test()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

async function run(index: number): Promise<void> {
  await withOneDoorFederation(
    `sustain-frontdoor-timeline-${index}-`,
    async ({ fed, server, entry, door }) => {
      const client = new MailLoop(door.host, door.port, 'timeline')
      try {
        const acked = () => [...client.record.acked.values()]
        await waitFor(() => acked().length >= 5, 60_000, 'five acknowledgements')
        const snapshots = () => server.records.filter((r) => r.event === 'snapshot_taken').length
        const base = snapshots()
        await waitFor(() => snapshots() >= base + 2, 30_000, 'two snapshots while mail flows')
        const load = loadavg()[0]!.toFixed(1)
        const killed_ms = Date.now()
        const last_before = Math.max(...acked().filter((t) => t <= killed_ms))
        server.signal('SIGKILL')
        // The first transaction begun after the kill: only the new server can have served it.
        const served = () => client.attempts.find((a) => a.outcome === 'acked' && a.start_ms > killed_ms)
        await waitFor(() => served() !== undefined, 60_000, 'a transaction begun after the kill')
        const first_after = served()!.end_ms
        const window = acked()
          .filter((t) => t >= last_before && t <= first_after)
          .sort((a, b) => a - b)
        const outage_ms = Math.max(...window.slice(1).map((t, i) => t - window[i]!))
        await new Promise((resolve) => setTimeout(resolve, 1000)) // the stages logged just after
        const lines: { t: number; text: string }[] = []
        const names = new Map(
          fed.nodes.map((n) => [
            n,
            n === server ? `${n.name}(killed)` : n === entry ? `${n.name}(entry)` : n.name,
          ]),
        )
        for (const node of fed.nodes) {
          for (const r of node.records) {
            const t = Number(r.time)
            if (t < killed_ms - 300 || t > first_after + 200 || !interesting(r)) continue
            lines.push({
              t,
              text: `${names.get(node)!.padEnd(16)} ${String(r.event ?? r.msg).padEnd(28)} ${detail(r)}`,
            })
          }
        }
        for (const a of client.attempts) {
          if (a.end_ms < killed_ms - 300 || a.start_ms > first_after + 200) continue
          lines.push({
            t: a.end_ms,
            text: `${'client'.padEnd(16)} ${`attempt ${a.outcome}`.padEnd(28)} n=${a.n} started=${a.start_ms - killed_ms} took=${a.end_ms - a.start_ms}${a.error ? ` error=${a.error.slice(0, 60)}` : ''}`,
          })
        }
        lines.push({ t: killed_ms, text: `${'bench'.padEnd(16)} SIGKILL ${server.name}` })
        lines.sort((a, b) => a.t - b.t)
        process.stdout.write(
          `\nrun ${index + 1}: outage ${outage_ms} ms (last ack ${last_before - killed_ms} ms, first after +${first_after - killed_ms} ms), load ${load}\n`,
        )
        for (const l of lines) process.stdout.write(`${String(l.t - killed_ms).padStart(6)} ms  ${l.text}\n`)
      } finally {
        await client.stop()
      }
    },
  )
}

for (let i = 0; i < RUNS; i++) await run(i)
