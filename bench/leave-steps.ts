/**
 * The per-step timeline of planned leaves under mail load, from the nodes' own logs: what each step of a
 * hand-over costs (the leaver's stop, final snapshot, the successor's claim, collect, restore, start, the
 * client's first acknowledgement). A diagnostic, no result file.
 *
 * Usage: bash test/loopback-only.sh npx tsx bench/leave-steps.ts [--leaves N] [--all]
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { LocalFederation, type LogRecord } from '../src/demo/local-federation.ts'
import { MailLoad } from '../src/demo/mail-load.ts'
import { leaveAndRejoin, percentile, sleep } from '../test/e2e/leave-run.ts'

const { values } = parseArgs({
  options: { leaves: { type: 'string' }, all: { type: 'boolean', default: false } },
})
const LEAVES = Number(values.leaves ?? 5)

/**
 * Steps: [label, whose log, the record that marks it, which one]. `last` picks the last match before the
 * successor's `state_materialised` (the final snapshot, not an earlier one taken or collected).
 */
const STEPS: Array<[string, 'leaver' | 'successor', (r: LogRecord) => boolean, 'first' | 'last']> = [
  ['stopping', 'leaver', (r) => r.event === 'service_stopping', 'first'],
  ['service exited', 'leaver', (r) => r.event === 'service_exited', 'first'],
  ['final taken', 'leaver', (r) => r.event === 'snapshot_taken', 'last'],
  ['elected', 'successor', (r) => r.event === 'elected', 'first'],
  ['collected', 'successor', (r) => r.event === 'snapshot_collected', 'last'],
  ['materialised', 'successor', (r) => r.event === 'state_materialised', 'first'],
  ['server', 'successor', (r) => r.event === 'role_changed' && r.to === 'server', 'first'],
  ['listening', 'successor', (r) => /listening on/.test(String(r.msg)), 'first'],
  ['leaver done', 'leaver', (r) => r.event === 'handover_finished', 'first'],
]

const dir = await mkdtemp(join(tmpdir(), 'sustain-leave-steps-'))
const fed = new LocalFederation({ dir, nodes: 4, priorities: [50, 40, 30, 20], snapshot_interval_ms: 500 })
const release = fed.stopOnSignals()
const rows: Record<string, number[]> = {}
const gaps: number[] = []
const record = (label: string, ms: number) => {
  rows[label] = [...(rows[label] ?? []), ms]
}
try {
  await fed.start()
  await fed.server(60_000)
  const load = new MailLoad({ ports: fed.nodes.map((n) => n.port), interval_ms: 50 })
  load.start()
  for (let i = 0; i < 400 && load.acked.size < 3; i++) await sleep(25)
  try {
    for (let i = 0; i < LEAVES; i++) {
      const r = await leaveAndRejoin(fed, load)
      gaps.push(r.gap_ms)
      const leaver = fed.nodes.find((n) => n.name === r.leaver)!
      const successor = fed.nodes.find((n) => n.name === r.successor)!
      const t = (x: LogRecord) => Number(x.time)
      const req = leaver.records.find((x) => x.event === 'leave_requested' && t(x) >= r.from_ms)
      if (!req) continue
      const t0 = t(req)
      const logs = { leaver: leaver.records, successor: successor.records }
      const line: string[] = []
      const materialised = logs.successor.find((x) => t(x) >= t0 && x.event === 'state_materialised')
      const end = materialised ? t(materialised) : Number.POSITIVE_INFINITY
      let server_at = t0
      for (const [label, who, match, which] of STEPS) {
        const hits = logs[who].filter((x) => t(x) >= t0 && match(x))
        const hit = which === 'first' ? hits[0] : hits.filter((x) => t(x) <= end).at(-1)
        if (!hit) continue
        const at = t(hit) - t0
        if (label === 'server') server_at = t(hit)
        record(label, at)
        line.push(`${label} ${at}`)
      }
      // The first acknowledgement the successor gave (earlier ones finished on the leaver).
      const first_ack = [...load.acked.values()].filter((a) => a > server_at).sort((a, b) => a - b)[0]
      if (first_ack !== undefined) {
        record('client answered', first_ack - t0)
        line.push(`client ${first_ack - t0}`)
      }
      process.stdout.write(`leave ${i + 1} ${r.leaver}->${r.successor} gap ${r.gap_ms}: ${line.join(', ')}\n`)
      const detail = (x: LogRecord) => {
        const { level, time, mono_ms, pid, hostname, name, msg, module, role, term, id, ...rest } = x
        return JSON.stringify(rest).slice(0, 300)
      }
      for (const [who, recs] of Object.entries(logs))
        for (const x of recs.filter(
          (x) =>
            t(x) >= t0 - 300 &&
            t(x) <= (first_ack ?? t0 + 5000) &&
            [
              'snapshot_taken',
              'snapshot_collected',
              'state_materialised',
              'service_started',
              'service_prestarted',
              'prestarted_exited',
            ].includes(String(x.event)),
        ))
          process.stdout.write(`   ${who} +${t(x) - t0} ${detail(x)}\n`)
      const tries = load.attempts.filter((a) => a.to_ms >= t0 - 300 && a.from_ms <= (first_ack ?? t0 + 5000))
      process.stdout.write(
        `   client: ${tries.map((a) => `${a.port % 100}:${a.from_ms - t0}-${a.to_ms - t0}${a.ok ? '✓' : '✗'}`).join(' ')}\n`,
      )
      if (values.all)
        for (const [name, recs] of Object.entries(logs))
          for (const x of recs.filter((x) => t(x) >= t0 - 200 && t(x) <= (first_ack ?? t0 + 5000)))
            process.stdout.write(
              `   ${name} +${t(x) - t0} ${x.event ?? ''} ${x.msg ?? ''} ${JSON.stringify(x).slice(0, 200)}\n`,
            )
    }
  } finally {
    await load.stop()
  }
} finally {
  release()
  await fed.stop()
  await rm(dir, { recursive: true, force: true })
}
const med = (xs: number[]) => percentile(xs, 50)
for (const [label, xs] of Object.entries(rows))
  process.stdout.write(
    `${label.padEnd(16)} median ${med(xs)} (${Math.min(...xs)}-${Math.max(...xs)}) n=${xs.length}\n`,
  )
process.stdout.write(`gap median ${med(gaps)} (${Math.min(...gaps)}-${Math.max(...gaps)})\n`)
