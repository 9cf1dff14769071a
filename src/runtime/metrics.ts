import { createServer, type Server } from 'node:http'
import { ROLES } from '../core/types.ts'
import type { NodeNotice, SustainNode } from './node.ts'

/**
 * Prometheus text exposition on 127.0.0.1 (off unless asked for): role, term, snapshot age and size,
 * replication in flight, and the durations of this node's last failover stages.
 */
export async function startMetrics(node: SustainNode, port: number): Promise<Server> {
  const stages = new Map<string, number>()
  let suspected_at: number | null = null
  node.watch((notice: NodeNotice) => {
    if (notice.kind !== 'timeline') return
    const now = Date.now()
    if (notice.name === 'server_suspected') suspected_at = now
    if (suspected_at !== null && ['elected', 'restored', 'service_answering'].includes(notice.name)) {
      stages.set(notice.name, now - suspected_at)
    }
  })
  const server = createServer((request, response) => {
    if (request.url !== '/metrics') {
      response.writeHead(404).end('see /metrics\n')
      return
    }
    const s = node.status()
    const lines = [
      '# HELP sustain_role 1 for the role this node has now.',
      '# TYPE sustain_role gauge',
      ...ROLES.map((role) => `sustain_role{role="${role}"} ${s.node.role === role ? 1 : 0}`),
      '# TYPE sustain_term gauge',
      `sustain_term ${s.node.term}`,
      '# TYPE sustain_peers_reachable gauge',
      `sustain_peers_reachable ${s.peers.filter((p) => p.reachable).length}`,
      '# TYPE sustain_snapshot_age_seconds gauge',
      `sustain_snapshot_age_seconds ${s.snapshot?.age_ms != null ? s.snapshot.age_ms / 1000 : 'NaN'}`,
      '# TYPE sustain_snapshot_size_bytes gauge',
      `sustain_snapshot_size_bytes ${s.snapshot?.size_bytes ?? 0}`,
      '# HELP sustain_recovery_point_age_seconds Age of the newest snapshot a candidate holds (what a failover restores).',
      '# TYPE sustain_recovery_point_age_seconds gauge',
      `sustain_recovery_point_age_seconds ${s.recovery_point.age_ms !== null ? s.recovery_point.age_ms / 1000 : 'NaN'}`,
      '# HELP sustain_recovery_point_stuck 1 when the recovery point is older than 3 snapshot intervals.',
      '# TYPE sustain_recovery_point_stuck gauge',
      `sustain_recovery_point_stuck ${s.recovery_point.stuck ? 1 : 0}`,
      '# HELP sustain_snapshot_failures_consecutive Snapshots of this node that failed in a row.',
      '# TYPE sustain_snapshot_failures_consecutive gauge',
      `sustain_snapshot_failures_consecutive ${s.snapshot_failures.consecutive}`,
      '# TYPE sustain_snapshots_held gauge',
      `sustain_snapshots_held ${s.snapshot?.held ?? 0}`,
      '# HELP sustain_replication_in_flight Snapshots being collected from the server right now.',
      '# TYPE sustain_replication_in_flight gauge',
      `sustain_replication_in_flight ${s.replicating.length}`,
      '# HELP sustain_failover_stage_seconds Time from detecting the server lost to each stage, last failover.',
      '# TYPE sustain_failover_stage_seconds gauge',
      ...[...stages].map(([stage, ms]) => `sustain_failover_stage_seconds{stage="${stage}"} ${ms / 1000}`),
    ]
    response.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(`${lines.join('\n')}\n`)
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, '127.0.0.1', () => resolve())
  })
  return server
}
