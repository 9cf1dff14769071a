import { Box, Text } from 'ink'
import { formatDuration, padCell, shortSnapshot } from '../format.ts'
import type { Theme } from '../theme.ts'
import type { NodeRow } from '../view.ts'

/** Column widths at 80 columns; the name column takes up to 10 more when the terminal is wider. */
const W = { prio: 4, role: 9, term: 4, reach: 11, heard: 7, susp: 6, snap: 10, health: 7 }
const BASE_NAME_WIDTH = 10

export function nameWidth(columns: number): number {
  return BASE_NAME_WIDTH + Math.max(0, Math.min(10, columns - 80))
}

function snapshotCell(row: NodeRow): string {
  if (row.snapshot === null) return '-'
  const mark = row.current === null ? '' : row.current ? ' ✓' : ' old'
  return `${shortSnapshot(row.snapshot)}${mark}`
}

/** Service health matters where the service runs; an unreachable node's last report is not shown as live. */
function healthCell(row: NodeRow): string {
  if (!row.reachable) return '?'
  return row.role === 'server' || row.role === 'restoring' ? row.health : '-'
}

export function NodesTable(props: {
  rows: NodeRow[]
  selected: string | null
  visible: number
  columns: number
  theme: Theme
}) {
  const { rows, selected, visible, theme } = props
  const name_w = nameWidth(props.columns)
  // Keep the selected row in view when there are more nodes than lines.
  const at = Math.max(
    0,
    rows.findIndex((r) => r.key === selected),
  )
  const first = Math.min(Math.max(0, at - visible + 1), Math.max(0, rows.length - visible))
  const shown = rows.slice(first, first + visible)
  const header = [
    ' ',
    padCell('NODE', name_w),
    padCell('PRIO', W.prio),
    padCell('ROLE', W.role),
    padCell('TERM', W.term),
    padCell('REACHABLE', W.reach),
    padCell('HEARD', W.heard),
    padCell('SUSP', W.susp),
    padCell('SNAPSHOT', W.snap),
    padCell('HEALTH', W.health),
  ].join(' ')
  return (
    <Box flexDirection="column">
      <Text bold wrap="truncate">
        {header}
        {rows.length > visible ? ` (${first + 1}-${first + shown.length}/${rows.length})` : ''}
      </Text>
      {shown.map((row) => {
        const is_selected = row.key === selected
        return (
          <Text key={row.key} inverse={is_selected} wrap="truncate">
            {is_selected ? '>' : ' '} {padCell(`${row.name}${row.self ? '*' : ''}`, name_w)}{' '}
            {padCell(String(row.priority), W.prio)}{' '}
            <Text color={theme.role(row.role)}>{padCell(row.role, W.role)}</Text>{' '}
            {padCell(String(row.term), W.term)}{' '}
            <Text color={row.reachable ? undefined : theme.bad}>{padCell(row.reach, W.reach)}</Text>{' '}
            {padCell(row.heard_ms === null ? '-' : formatDuration(row.heard_ms), W.heard)}{' '}
            <Text color={row.self ? undefined : theme.suspicion(row.suspicion.level)}>
              {padCell(row.suspicion.label, W.susp)}
            </Text>{' '}
            <Text color={row.current === false ? theme.dim : undefined}>
              {padCell(snapshotCell(row), W.snap)}
            </Text>{' '}
            <Text color={row.health === 'ok' ? theme.ok : row.health === 'down' ? theme.bad : undefined}>
              {padCell(healthCell(row), W.health)}
            </Text>
          </Text>
        )
      })}
    </Box>
  )
}
