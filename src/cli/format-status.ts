import type { NodeStatus } from '../runtime/status.ts'

function ago(ms: number | null): string {
  if (ms === null) return '-'
  return ms < 10_000 ? `${ms} ms` : `${Math.round(ms / 1000)} s`
}

/** The human view of `sustain status`: this node, then every peer, server first. */
export function formatStatus(status: NodeStatus): string {
  const me = status.node
  const rows = [
    ['', 'name', 'key', 'prio', 'role', 'term', 'reachable', 'heard', 'snapshot', 'data'],
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
  return `server: ${server}; service health: ${me.health}\n${snap}\n\n${table}\n`
}
