import { Text } from 'ink'
import { formatBytes, formatDuration, progressBar, shortKey, shortSnapshot } from '../format.ts'
import { type Transfer, transferRate, type UiState } from '../model.ts'
import type { Theme } from '../theme.ts'
import { type NodeRow, serverName, serverSnapshot } from '../view.ts'

/** The server's newest snapshot and how many nodes hold it; this node's newest, its size and count kept. */
export function SnapshotLine(props: { state: UiState; rows: NodeRow[]; theme: Theme }) {
  const status = props.state.status
  if (status === null) return <Text wrap="truncate"> </Text>
  const newest = serverSnapshot(status)
  const holders = props.rows.filter((r) => r.current === true).length
  const server = serverName(status)
  const head =
    newest === null
      ? server === null
        ? 'no server'
        : `server ${server} has no snapshot yet`
      : `server ${server} newest ${shortSnapshot(newest)} held by ${holders}/${props.rows.length}`
  const mine = status.snapshot
  const here =
    mine === null
      ? 'none here'
      : `here ${shortSnapshot(mine.id)} ${formatBytes(mine.size_bytes)}, ${mine.held} kept` +
        (mine.age_ms === null ? '' : `, taken ${formatDuration(mine.age_ms)} ago`)
  const point = status.recovery_point
  const recovery = point.age_ms === null ? '' : ` · recovery point ${formatDuration(point.age_ms)} old`
  return (
    <Text wrap="truncate">
      <Text bold>Snapshots </Text>
      {point.stuck ? <Text color={props.theme.bad}>RECOVERY POINT STUCK · </Text> : null}
      {head} · {here}
      {recovery}
    </Text>
  )
}

export function TransferLine(props: { transfer: Transfer; columns: number; theme: Theme }) {
  const t = props.transfer
  const fraction = t.bytes_total > 0 ? t.bytes_done / t.bytes_total : 0
  const rate = transferRate(t)
  const bar_width = Math.max(10, Math.min(30, props.columns - 60))
  return (
    <Text wrap="truncate">
      {' '}
      {t.what.padEnd(9)} {shortSnapshot(t.id).padEnd(8)}{' '}
      <Text color={t.done_ms === null ? undefined : props.theme.ok}>{progressBar(fraction, bar_width)}</Text>{' '}
      {`${Math.floor(fraction * 100)}%`.padStart(4)} {formatBytes(t.bytes_done)}/{formatBytes(t.bytes_total)}
      {rate === null ? '' : ` ${formatBytes(rate)}/s`}
      {t.done_ms === null ? '' : ' done'}
    </Text>
  )
}

/** Everything known about the selected node, on one line. */
export function Details(props: { row: NodeRow | undefined; theme: Theme }) {
  const row = props.row
  if (!row) return <Text wrap="truncate"> </Text>
  const parts = [
    `${row.name} ${shortKey(row.key)}`,
    `priority ${row.priority}`,
    `${row.role} at term ${row.term}`,
    row.self ? 'this node' : row.reachable ? `reachable (${row.reach})` : `unreachable (${row.reach})`,
    row.heard_ms === null
      ? null
      : `heard ${formatDuration(row.heard_ms)} ago, suspicion ${row.suspicion.label}`,
    `holds ${shortSnapshot(row.snapshot)}${row.current === true ? ' (newest)' : row.current === false ? ' (behind)' : ''}`,
    row.role === 'server' || row.self ? `service ${row.health}` : null,
    row.capacity.load === undefined ? null : `load ${Number(row.capacity.load.toFixed(2))}`,
    row.capacity.room_bytes == null ? null : `room ${formatBytes(row.capacity.room_bytes)}`,
    row.capacity.site == null ? null : `site ${row.capacity.site}`,
  ].filter((p) => p !== null)
  return (
    <Text wrap="truncate">
      <Text bold>Selected </Text>
      {parts.join(' · ')}
    </Text>
  )
}
