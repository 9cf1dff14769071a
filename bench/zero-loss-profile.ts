import { mkdtemp, rm } from 'node:fs/promises'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { LocalFederation } from '../src/demo/local-federation.ts'
import { Client, percentile, placeBallast } from '../test/e2e/zero-loss-run.ts'

const mode = process.argv[2] === 'off' ? 'off' : Number(process.argv[2] ?? 1)
const ballast_mib = Number(process.argv[3] ?? 16)
const seconds = Number(process.argv[4] ?? 15)
const dir = await mkdtemp(join(tmpdir(), 'sustain-zl-profile-'))
const fed = new LocalFederation({
  dir,
  nodes: mode === 'off' ? 3 : mode + 2,
  snapshot_interval_ms: 1000,
  front_door: {},
  output_commit: mode,
})
const release = fed.stopOnSignals()
try {
  await fed.start()
  let server = await fed.server(60_000)
  await placeBallast(fed, server, ballast_mib << 20)
  const door = fed.nodes.at(-1)!.front_door!
  const load0 = loadavg()[0]!
  const client = new Client(door.host, door.port)
  await client.more(3, 60_000)
  const from = Date.now()
  await new Promise((r) => setTimeout(r, seconds * 1000))
  const to = Date.now()
  await client.stop()
  const acked = client.acked_at.filter((t) => t >= from && t <= to).length
  const inWindow = (r: Record<string, unknown>) => Number(r.time) >= from && Number(r.time) <= to
  // The server of the window (an early election may have moved it since the ballast was written).
  const takes = (n: (typeof fed.nodes)[number]) =>
    n.records.filter((r) => r.event === 'snapshot_taken' && inWindow(r)).length
  server = fed.nodes.reduce((a, b) => (takes(b) > takes(a) ? b : a))
  const med = (xs: number[]) => (xs.length ? Math.round(percentile(xs, 50)) : NaN)
  const p90 = (xs: number[]) => (xs.length ? Math.round(percentile(xs, 90)) : NaN)
  const taken_recs = server.records.filter((r) => r.event === 'snapshot_taken' && inWindow(r))
  const fields = new Set(taken_recs.flatMap((r) => Object.keys(r).filter((k) => k.endsWith('_ms'))))
  const out: Record<string, unknown> = {
    mode,
    ballast_mib,
    mails_per_s: +(acked / ((to - from) / 1000)).toFixed(2),
    latency_p50: med(client.latency_ms.slice(-acked)),
    latency_p90: p90(client.latency_ms.slice(-acked)),
    snapshots: taken_recs.length,
    covered: server.records.filter((r) => r.event === 'snapshot_covered' && inWindow(r)).length,
    load: [load0, loadavg()[0]],
  }
  for (const f of fields)
    out[`taken.${f}`] = [
      med(taken_recs.map((r) => Number(r[f] ?? 0))),
      p90(taken_recs.map((r) => Number(r[f] ?? 0))),
    ]
  const rel = server.records.filter((r) => r.event === 'output_released' && inWindow(r))
  out['released.commit_ms'] = [
    med(rel.map((r) => Number(r.commit_ms))),
    p90(rel.map((r) => Number(r.commit_ms))),
  ]
  out.releases = rel.length
  // Per snapshot: taken (server) -> collected (each candidate) -> released (server).
  const lags: number[] = []
  const rel_lags: number[] = []
  for (const t of taken_recs) {
    for (const n of fed.nodes.filter((x) => x !== server)) {
      const c = n.records.find((r) => r.event === 'snapshot_collected' && r.id === t.id)
      if (c) lags.push(Number(c.time) - Number(t.time))
    }
    const r = rel.find((x) => x.id === t.id)
    if (r) rel_lags.push(Number(r.time) - Number(t.time))
  }
  out['taken_to_collected_ms'] = [med(lags), p90(lags)]
  out['taken_to_released_ms'] = [med(rel_lags), p90(rel_lags)]
  const coll = fed.nodes
    .filter((x) => x !== server)
    .flatMap((n) => n.records.filter((r) => r.event === 'snapshot_collected' && inWindow(r)))
  out['collected.ms'] = [med(coll.map((r) => Number(r.ms))), p90(coll.map((r) => Number(r.ms)))]
  process.stdout.write(`${JSON.stringify(out, null, 1)}\n`)
  if (process.env.ZL_DUMP) {
    const events = new Set([
      'snapshot_taken',
      'snapshot_covered',
      'output_released',
      'service_paused',
      'snapshot_collected',
    ])
    for (const n of fed.nodes)
      for (const r of n.records)
        if (events.has(String(r.event)) && inWindow(r))
          process.stderr.write(`${n === server ? 'S' : 'c'} ${JSON.stringify(r)}\n`)
  }
} finally {
  release()
  await fed.stop()
  if (!process.env.ZL_KEEP) await rm(dir, { recursive: true, force: true })
  else process.stderr.write(`kept ${dir}\n`)
}
