import { render } from 'ink-testing-library'
import { describe, expect, it } from 'vitest'
import { Screen } from '../../src/tui/components/Screen.tsx'
import { initialState, reduce, type UiState } from '../../src/tui/model.ts'
import { makeTheme } from '../../src/tui/theme.ts'
import { MARKS, STREAM, status, T0 } from './recorded-stream.ts'

/** The UI state after replaying the recorded stream up to `until` ms (inclusive). */
function replay(until: number, now_extra_ms = 0): UiState {
  let state = initialState(T0)
  for (const [at, input] of STREAM) if (at <= until) state = reduce(state, input, T0 + at)
  return now_extra_ms > 0 ? reduce(state, { type: 'tick' }, state.now_ms + now_extra_ms) : state
}

function screen(
  state: UiState,
  options: {
    columns?: number
    lines?: number
    color?: boolean
    selected?: string | null
    demo?: boolean
  } = {},
) {
  const { lastFrame, unmount } = render(
    <Screen
      state={state}
      columns={options.columns ?? 80}
      lines={options.lines ?? 23}
      theme={makeTheme(options.color ?? false)}
      selected={options.selected ?? null}
      prompt={null}
      keys
      title="sustain ui"
      target="/tmp/x/control.sock"
      demo={options.demo ?? false}
    />,
  )
  const frame = lastFrame() ?? ''
  unmount()
  return frame
}

const line = (frame: string, text: string) => frame.split('\n').find((l) => l.includes(text)) ?? ''

describe('screen against a recorded stream', () => {
  it('shows the nodes, the server first, with roles, terms, reachability and snapshots held', () => {
    const frame = screen(replay(MARKS.steady))
    expect(frame).toContain('server: node-0')
    const rows = frame.split('\n').filter((l) => /node-\d/.test(l) && !l.includes('server:'))
    expect(rows[0]).toMatch(/node-0\s+30\s+server\s+1\s+up/)
    expect(line(frame, 'node-1*')).toMatch(/candidate\s+1\s+self/)
    expect(line(frame, 'node-2 ')).toMatch(/candidate/)
    expect(line(frame, 'node-0 ')).toContain('1:6 ✓')
    expect(line(frame, 'node-2 ')).toContain('1:5 old')
    expect(frame).toMatch(/newest 1:6 held by 2\/3/)
  })

  it('shows replication progress with bytes and rate', () => {
    const frame = screen(replay(MARKS.replicating))
    // 512 KiB of 1 MiB in 500 ms: 50 %, 1 MB/s.
    expect(line(frame, 'replicate')).toMatch(/replicate\s+1:6\s+\[█+░+\]\s+50% 512 KB\/1.0 MB 1.0 MB\/s/)
  })

  it('shows suspicion rising, then the server unreachable and the local node electing', () => {
    const late = screen(replay(MARKS.steady + 1190))
    expect(line(late, 'node-0 ')).toMatch(/late/)
    const frame = screen(replay(MARKS.suspected))
    expect(line(frame, 'node-0 ')).toMatch(/down 700 ms\s+700 ms\s+down/)
    expect(frame).toMatch(/node-1 electing term 1/)
    expect(frame).toContain('server node-0 suspected (suspected)')
    expect(frame).toContain('node-0 unreachable')
  })

  it('shows the failover stages with durations measured from the suspicion', () => {
    const restoring = screen(replay(MARKS.restoring))
    expect(line(restoring, 'restore ')).toMatch(/25% 256 KB\/1.0 MB/)
    expect(restoring).toMatch(/elected at term 2, restoring 1:6\s+\+210 ms/)
    const frame = screen(replay(MARKS.served))
    expect(frame).toContain('server: node-1 (this node)')
    expect(frame).toMatch(/restored 1:6\s+\+550 ms/)
    expect(frame).toMatch(/service answering\s+\+800 ms/)
    expect(line(frame, 'node-1*')).toMatch(/server\s+2\s+self.*ok/)
  })

  it('shows a heal: the peer reachable again, the merge with its duration, the new server', () => {
    const frame = screen(replay(MARKS.healed))
    expect(frame).toContain('node-0 reachable again')
    expect(frame).toMatch(/merge into node-0 from fork 1:6/)
    expect(frame).toMatch(/merge into node-0 finished \(1 attempts\)\s+\+849 ms/)
    expect(frame).toContain('server: node-0')
    expect(line(frame, 'node-1*')).toMatch(/candidate\s+2/)
  })

  it('shows merge sizes when the runtime reports them', () => {
    const notice = (name: string, fields: Record<string, unknown>) =>
      ({ type: 'notice', notice: { kind: 'timeline', name, fields, role: 'merging', term: 2 } }) as const
    let state = replay(MARKS.served)
    state = reduce(
      state,
      notice('merge_started', { winner: 'a0'.repeat(32), fork: null, bytes: 3072 }),
      T0 + 5000,
    )
    state = reduce(
      state,
      notice('merge_finished', { winner: 'a0'.repeat(32), attempts: 1, bytes: 3072 }),
      T0 + 5500,
    )
    const frame = screen(state)
    expect(frame).toContain('merge into node-0 from fork - (3.0 KB)')
    expect(frame).toMatch(/merge into node-0 finished \(1 attempts\) \(3.0 KB\)\s+\+500 ms/)
  })

  it('fits 80x24: no line wider than 80 columns, exactly 23 lines', () => {
    const frame = screen(replay(MARKS.healed))
    const lines = frame.split('\n')
    expect(lines.length).toBe(23)
    for (const l of lines) expect(l.length).toBeLessThanOrEqual(80)
    expect(lines.at(-1)).toContain('q quit')
  })

  it('resizes: a wider screen widens the name column, a short one keeps the selected node and the keys', () => {
    const wide = screen(replay(MARKS.healed), { columns: 120, lines: 40 })
    expect(wide.split('\n').length).toBe(40)
    const short = screen(replay(MARKS.healed), { lines: 12, selected: 'c2'.repeat(32) })
    const lines = short.split('\n')
    expect(lines.length).toBe(12)
    expect(short).toContain('> node-2')
    expect(lines.at(-1)).toContain('q quit')
  })

  it('shows the selected node in the details line', () => {
    const frame = screen(replay(MARKS.suspected), { selected: 'a0'.repeat(32) })
    expect(line(frame, 'Selected')).toMatch(/node-0 a0a0a0a0 · priority 30 · server at term 1 · unreachable/)
  })

  it('says when the local node is lost and when it is back', () => {
    let state = replay(MARKS.served)
    state = reduce(state, { type: 'lost', reason: 'ECONNREFUSED' }, T0 + 4000)
    state = reduce(state, { type: 'tick' }, T0 + 6500)
    const lost = screen(state)
    expect(lost).toMatch(/local node not answering for 2.5 s \(ECONNREFUSED\)/)
    expect(lost).toContain('lost the local node (ECONNREFUSED); reconnecting')
    state = reduce(state, { type: 'connected' }, T0 + 7000)
    const back = screen(state)
    expect(back).not.toContain('not answering')
    expect(back).toContain('reconnected to the local node (down 3.0 s)')
  })

  it('after a reconnection, a restarted node that knows no peers yet is not reported as peers leaving', () => {
    let state = replay(MARKS.served)
    state = reduce(state, { type: 'lost', reason: 'ECONNREFUSED' }, T0 + 4000)
    state = reduce(state, { type: 'connected' }, T0 + 7000)
    const restarted = status({ role: 'candidate', term: 2, server: null, snapshot: null }, [])
    state = reduce(state, { type: 'status', status: restarted }, T0 + 7010)
    const frame = screen(state)
    expect(frame).not.toContain(' left')
    expect(frame).toMatch(/node-1 candidate term 2\s+server: none/)
  })

  it('folds routine replication into one timeline line with a count', () => {
    let state = replay(MARKS.steady)
    for (let seq = 7; seq <= 9; seq++) {
      const id = `${'a0'.repeat(32)}:1:${seq}`
      state = reduce(
        state,
        {
          type: 'notice',
          notice: { kind: 'progress', what: 'replicate', id, bytes_done: 0, bytes_total: 10 },
        },
        state.now_ms + 10,
      )
      state = reduce(
        state,
        {
          type: 'notice',
          notice: { kind: 'progress', what: 'replicate', id, bytes_done: 10, bytes_total: 10 },
        },
        state.now_ms + 100,
      )
    }
    const frame = screen(state)
    expect(frame).toMatch(/collected 1:9 \(10 B in 100 ms\) ×4/)
  })

  it('shows the demo narration panel', () => {
    let state = replay(MARKS.steady)
    state = reduce(state, { type: 'demo', line: 'SIGKILL node-0 (pid 4242) and its service' }, state.now_ms)
    state = reduce(
      state,
      { type: 'demo', line: `node-1 elected, restoring ${'a0'.repeat(32)}:1:6` },
      state.now_ms,
    )
    const frame = screen(state, { demo: true })
    expect(frame).toContain('▶ SIGKILL node-0 (pid 4242) and its service')
    expect(frame).toContain('▶ node-1 elected, restoring a0a0a0a0…:1:6')
    expect(frame.split('\n').length).toBe(23)
  })
})
