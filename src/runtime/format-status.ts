import { formatBytes } from '../tui/format.ts'
import type { Capacity, NodeStatus } from './status.ts'

/** `capacity` figures for the table: load, room for the state and site ('-' when not reported). */
function capacityCells(c: Capacity): string[] {
  return [
    c.load === undefined ? '-' : String(Number(c.load.toFixed(2))),
    c.room_bytes == null ? '-' : formatBytes(c.room_bytes),
    c.site ?? '-',
  ]
}

function ago(ms: number | null): string {
  if (ms === null) return '-'
  return ms < 10_000 ? `${ms} ms` : `${Math.round(ms / 1000)} s`
}

/** The human view of `sustain status`: this node, then every peer, server first. */
export function formatStatus(status: NodeStatus): string {
  const me = status.node
  const rows = [
    [
      '',
      'name',
      'key',
      'prio',
      'role',
      'term',
      'reachable',
      'heard',
      'snapshot',
      'data',
      'load',
      'room',
      'site',
    ],
    [
      '*',
      me.name,
      me.key.slice(0, 8),
      String(me.priority),
      me.role,
      String(me.term),
      'self',
      '-',
      status.snapshot?.id.split(':').slice(1).join(':') ?? '-',
      '-',
      ...capacityCells(me),
    ],
    ...status.peers
      .sort((a, b) => Number(b.role === 'server') - Number(a.role === 'server') || b.priority - a.priority)
      .map((p) => [
        '',
        p.name ?? '?',
        p.key.slice(0, 8),
        String(p.priority),
        p.role,
        String(p.term),
        p.reachable ? 'yes' : 'no',
        ago(p.last_heard_ms_ago),
        p.snapshot?.split(':').slice(1).join(':') ?? '-',
        p.data ?? '-',
        ...capacityCells(p),
      ]),
  ]
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)))
  const table = rows
    .map((r) =>
      r
        .map((cell, i) => cell.padEnd(widths[i]!))
        .join('  ')
        .trimEnd(),
    )
    .join('\n')
  const server =
    me.server === me.key ? `this node (${me.name})` : me.server ? me.server.slice(0, 8) : 'none known'
  const snap = status.snapshot
    ? `newest snapshot ${status.snapshot.id.slice(0, 8)}…:${status.snapshot.id.split(':').slice(1).join(':')}, ${status.snapshot.size_bytes} bytes, age ${ago(status.snapshot.age_ms)}, ${status.snapshot.held} held`
    : 'no snapshot yet'
  return `server: ${server}; service health: ${me.health}\n${snap}\n${recoveryLine(status)}\n${outputCommitLine(status)}\n\n${table}\n`
}

/** Zero-loss mode: off, or k and what the front door holds now and when it last released. */
export function outputCommitLine(status: NodeStatus): string {
  const oc = status.output_commit
  if (oc.k === null) return 'output commit: off (loss bounded by the snapshot interval)'
  const head = `output commit: k=${oc.k}`
  if (oc.held_bytes === undefined) return head
  const last =
    oc.last_release_ms_ago == null
      ? 'nothing released yet'
      : `last release ${ago(oc.last_release_ms_ago)} ago (freeze to release ${oc.last_commit_ms} ms)`
  return `${head}, holding ${oc.held_bytes} bytes on ${oc.connections} connection(s); ${last}; ${oc.covered_captures} capture(s) covered by an earlier snapshot`
}

/** What a failover would restore now; says plainly when snapshots stopped reaching the candidates. */
export function recoveryLine(status: NodeStatus): string {
  const point = status.recovery_point
  const failures = status.snapshot_failures
  const why =
    failures.consecutive > 0
      ? `; ${failures.consecutive} snapshot(s) failed in a row: ${failures.last_reason}`
      : ''
  const where = point.holders === 0 ? 'on the server only' : `on ${point.holders} candidate(s)`
  if (point.stuck) {
    const lost =
      point.age_ms === null
        ? 'no snapshot reached a candidate: a failover now restores nothing'
        : `newest snapshot ${where} is ${ago(point.age_ms)} old (limit ${ago(point.limit_ms)}): a failover now loses that much`
    return `RECOVERY POINT STUCK: ${lost}${why}`
  }
  if (point.id === null) return `recovery point: none yet${why}`
  return `recovery point: ${point.id.slice(0, 8)}…:${point.id.split(':').slice(1).join(':')} ${where}, age ${ago(point.age_ms)}${why}`
}
