import { formatStatus } from '../runtime/format-status.ts'
import type { NodeStatus } from '../runtime/status.ts'
import { formatClock } from './format.ts'
import { initialState, reduce, type UiInput, type UiState } from './model.ts'
import { WatchConnection } from './watch-connection.ts'

/** The federation's shape: when it changes (roles, terms, reachability, server), the table is printed again. */
function shape(status: NodeStatus): string {
  const peers = status.peers.map((p) => `${p.key}:${p.role}:${p.term}:${p.reachable}`).sort()
  return [status.node.role, status.node.term, status.node.server, status.node.health, ...peers].join('|')
}

export interface PlainUi {
  /** Resolves when `close()` was called. */
  readonly done: Promise<void>
  close(): void
}

/**
 * For a stdout that is not a terminal (a pipe, a file, CI): no screen drawing, only lines. Every
 * timeline entry as `HH:MM:SS.mmm text (+duration)`, and the `sustain status` table again whenever the
 * federation's shape changes.
 */
export function runPlain(options: {
  socket_path: string
  out: NodeJS.WritableStream
  interval_ms?: number
  retry_ms?: number
}): PlainUi {
  const now = () => performance.timeOrigin + performance.now()
  let state: UiState = initialState(now())
  let printed_seq = 0
  let last_shape: string | null = null
  const apply = (input: UiInput) => {
    state = reduce(state, input, now())
    for (const entry of state.timeline) {
      if (entry.seq <= printed_seq || entry.kind !== null) continue
      printed_seq = entry.seq
      const duration = entry.duration === null ? '' : ` (${entry.duration})`
      options.out.write(`${formatClock(entry.at_ms)} ${entry.text}${duration}\n`)
    }
    if (input.type === 'status' && shape(input.status) !== last_shape) {
      last_shape = shape(input.status)
      options.out.write(`\n${formatStatus(input.status)}\n`)
    }
  }
  const connection = new WatchConnection(
    options.socket_path,
    {
      connected: () => apply({ type: 'connected' }),
      lost: (reason) => apply({ type: 'lost', reason }),
      status: (status) => apply({ type: 'status', status }),
      notice: (notice) => apply({ type: 'notice', notice }),
    },
    { interval_ms: options.interval_ms ?? 500, retry_ms: options.retry_ms ?? 1000 },
  )
  let resolve_done!: () => void
  const done = new Promise<void>((resolve) => {
    resolve_done = resolve
  })
  connection.start()
  return {
    done,
    close() {
      connection.close()
      resolve_done()
    },
  }
}
