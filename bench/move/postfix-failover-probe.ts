/**
 * One-off measurement (issue 26, part 2): SIGKILL of the server of a 3-node federation running real
 * Postfix; times from the kill to the successor's `elected` and `service_answering`.
 * Usage: bash test/loopback-only.sh npx tsx bench/move/postfix-failover-probe.ts SERVICE_DIR RUNS
 */
import { chmod, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { LocalFederation, type LogRecord } from '../../src/demo/local-federation.ts'

const [service_dir, runs_arg] = process.argv.slice(2)
const after = (name: string, t: number) => (r: LogRecord) => r.event === name && Number(r.time) >= t
const dir = await mkdtemp(join(tmpdir(), 'sustain-pfx-probe-'))
await chmod(dir, 0o711)
const fed = new LocalFederation({ dir, nodes: 3, service_dir: service_dir!, snapshot_interval_ms: 2000 })
try {
  await fed.start()
  for (let run = 0; run < Number(runs_arg ?? 2); run++) {
    for (const node of fed.nodes) if (!node.running) node.start()
    const server = await fed.server(120_000)
    await server.waitFor((r) => r.event === 'driver' && r.kind === 'answering', 120_000, 'answering')
    const others = fed.nodes.filter((n) => n !== server)
    const t = Date.now()
    await LocalFederation.first(others, after('snapshot_collected', t), 60_000, 'collected')
    const killed = Date.now()
    server.signal('SIGKILL')
    const { node, record } = await LocalFederation.first(
      others,
      after('service_answering', killed),
      120_000,
      'answering',
    )
    const elected = node.records.find(after('elected', killed))
    const restored = node.records.find(after('restored', killed))
    process.stdout.write(
      `${JSON.stringify({ run, kill_to_elected_ms: Number(elected?.time) - killed, kill_to_restored_ms: Number(restored?.time) - killed, kill_to_answering_ms: Number(record.time) - killed, restored_to_answering_ms: Number(record.time) - Number(restored?.time) })}\n`,
    )
  }
} finally {
  await fed.stop()
  await rm(dir, { recursive: true, force: true })
}
