import { Box, Text } from 'ink'
import { formatClock } from '../format.ts'
import type { TimelineEntry } from '../model.ts'
import type { Theme } from '../theme.ts'

/** The newest `lines` events, oldest first, with the time they arrived and their measured durations. */
export function Timeline(props: { entries: TimelineEntry[]; lines: number; theme: Theme }) {
  const shown = props.lines > 0 ? props.entries.slice(-props.lines) : []
  const blank = Math.max(0, props.lines - shown.length)
  return (
    <Box flexDirection="column">
      <Text bold wrap="truncate">
        Timeline
      </Text>
      {shown.map((e) => (
        <Text key={e.seq} wrap="truncate">
          <Text color={props.theme.dim}>{formatClock(e.at_ms)}</Text>{' '}
          <Text color={props.theme.tone(e.tone)}>{e.text}</Text>
          {e.count > 1 ? ` ×${e.count}` : ''}
          {e.duration === null ? '' : `  ${e.duration}`}
        </Text>
      ))}
      {Array.from({ length: blank }, (_, i) => (
        // biome-ignore lint/suspicious/noArrayIndexKey: blank filler lines have no identity
        <Text key={`blank-${i}`}> </Text>
      ))}
    </Box>
  )
}
