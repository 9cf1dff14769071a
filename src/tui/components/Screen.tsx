import { Box, Text } from 'ink'
import { formatDuration } from '../format.ts'
import type { UiState } from '../model.ts'
import type { Theme } from '../theme.ts'
import { nodeRows, serverName } from '../view.ts'
import { NodesTable } from './NodesTable.tsx'
import { Details, SnapshotLine, TransferLine } from './Panels.tsx'
import { Timeline } from './Timeline.tsx'

export interface ScreenProps {
  state: UiState
  columns: number
  /** Lines the screen may use: the terminal's rows minus one, so Ink never has to clear and redraw. */
  lines: number
  theme: Theme
  selected: string | null
  /** A question awaiting y/n (leave confirmation), shown instead of the key help. */
  prompt: string | null
  /** Whether keys work (stdin is a terminal). */
  keys: boolean
  title: string
  /** What the UI is attached to, for the connecting banner. */
  target: string
  /** Show the demo's narration panel; `demo_running` until its scenario is over. */
  demo: boolean
  demo_running?: boolean
}

/** Narration names snapshots by full 64-hex writer keys; 8 hex digits are enough on a screen. */
function shortenKeys(line: string): string {
  return line.replace(/\b([0-9a-f]{8})[0-9a-f]{56}\b/g, '$1…')
}

const MAX_TRANSFER_LINES = 3
const DEMO_LINES = 3
const MIN_TIMELINE_LINES = 2

function Header(props: { state: UiState; title: string; theme: Theme }) {
  const status = props.state.status
  const me = status?.node
  const server = status ? serverName(status) : null
  return (
    <Text wrap="truncate">
      <Text bold>{props.title}</Text>
      {me ? (
        <>
          {'  '}
          {me.name} <Text color={props.theme.role(me.role)}>{me.role}</Text> term {me.term}
          {'  '}server: {server === null ? 'none' : server === me.name ? `${server} (this node)` : server}
        </>
      ) : (
        ''
      )}
    </Text>
  )
}

function Banner(props: { state: UiState; target: string; theme: Theme }) {
  const { connection, now_ms } = props.state
  if (connection.state === 'connected') return null
  const since = formatDuration(now_ms - connection.since_ms)
  const text =
    connection.state === 'lost'
      ? `local node not answering for ${since} (${connection.reason}); last known view below; reconnecting`
      : `connecting to ${props.target}${connection.reason ? ` (${connection.reason})` : ''}; retrying`
  return (
    <Text color={props.theme.bad} bold wrap="truncate">
      {text}
    </Text>
  )
}

function Footer(props: { prompt: string | null; keys: boolean; demo_running: boolean }) {
  if (props.prompt !== null)
    return (
      <Text inverse bold wrap="truncate">
        {props.prompt}
      </Text>
    )
  if (!props.keys) return <Text wrap="truncate">keys off: stdin is not a terminal (Ctrl+C quits)</Text>
  return (
    <Text wrap="truncate">
      <Text bold>s</Text> snapshot <Text bold>l</Text> leave <Text bold>q</Text> quit <Text bold>↑↓</Text>{' '}
      select node{props.demo_running ? '  (the demo runs until its report)' : ''}
    </Text>
  )
}

/** The whole screen, laid out to fit `lines` x `columns` exactly (80x24 and up; smaller is cut). */
export function Screen(props: ScreenProps) {
  const { state, theme } = props
  const rows = nodeRows(state)
  const banner = state.connection.state === 'connected' ? 0 : 1
  const transfers = state.transfers.slice(-MAX_TRANSFER_LINES)
  const demo_lines = props.demo ? DEMO_LINES : 0
  // header, snapshot line, details, timeline title, footer, nodes header
  const fixed = 6 + banner + transfers.length + (props.demo ? demo_lines + 1 : 0)
  const free = Math.max(0, props.lines - fixed)
  const node_lines = Math.max(1, Math.min(rows.length, free - MIN_TIMELINE_LINES))
  const timeline_lines = Math.max(0, free - node_lines)
  const selected = rows.find((r) => r.key === props.selected) ?? rows[0]
  return (
    <Box flexDirection="column" width={props.columns} height={props.lines} overflow="hidden">
      <Header state={state} title={props.title} theme={theme} />
      <Banner state={state} target={props.target} theme={theme} />
      {rows.length > 0 ? (
        <NodesTable
          rows={rows}
          selected={selected?.key ?? null}
          visible={node_lines}
          columns={props.columns}
          theme={theme}
        />
      ) : (
        <Box height={node_lines + 1}>
          <Text wrap="truncate">no status yet</Text>
        </Box>
      )}
      <SnapshotLine state={state} rows={rows} theme={theme} />
      {transfers.map((t) => (
        <TransferLine key={`${t.what}:${t.id}`} transfer={t} columns={props.columns} theme={theme} />
      ))}
      <Details row={selected} theme={theme} />
      {props.demo ? (
        <Box flexDirection="column">
          <Text bold wrap="truncate">
            Demo
          </Text>
          {Array.from({ length: demo_lines }, (_, i) => {
            const line = state.demo[state.demo.length - demo_lines + i]
            return (
              // biome-ignore lint/suspicious/noArrayIndexKey: the demo panel is a fixed set of lines
              <Text key={`demo-${i}`} wrap="truncate">
                {line === undefined ? ' ' : `▶ ${shortenKeys(line)}`}
              </Text>
            )
          })}
        </Box>
      ) : null}
      <Timeline entries={state.timeline} lines={timeline_lines} theme={theme} />
      <Box flexGrow={1} />
      <Footer prompt={props.prompt} keys={props.keys} demo_running={props.demo_running ?? false} />
    </Box>
  )
}
