import { render } from 'ink-testing-library'
import { describe, expect, it, vi } from 'vitest'
import { Screen } from '../../src/tui/components/Screen.tsx'
import { initialState, reduce } from '../../src/tui/model.ts'
import { colorEnabled, makeTheme } from '../../src/tui/theme.ts'
import { MARKS, STREAM, T0 } from './recorded-stream.ts'

// Ink's colour support is decided when chalk loads; a test stdout is no terminal, so force it on here to
// see that NO_COLOR (not the stream) is what turns colours off.
vi.hoisted(() => {
  process.env.FORCE_COLOR = '1'
})

function frame(color: boolean): string {
  let state = initialState(T0)
  for (const [at, input] of STREAM) if (at <= MARKS.suspected) state = reduce(state, input, T0 + at)
  const { lastFrame, unmount } = render(
    <Screen
      state={state}
      columns={80}
      lines={23}
      theme={makeTheme(color)}
      selected={null}
      prompt={null}
      keys
      title="sustain ui"
      target="x"
      demo={false}
    />,
  )
  const text = lastFrame() ?? ''
  unmount()
  return text
}

describe('colours', () => {
  it('colours roles, faults and suspicion, and draws no colour at all with NO_COLOR', () => {
    const coloured = frame(colorEnabled({}))
    expect(coloured).toContain('\u001b[32m') // green: server role, service ok
    expect(coloured).toContain('\u001b[31m') // red: unreachable, suspicion down, faults
    expect(coloured).toContain('\u001b[33m') // yellow: electing
    const plain = frame(colorEnabled({ NO_COLOR: '1' }))
    for (const code of ['31', '32', '33', '34', '35', '36', '90'])
      expect(plain).not.toContain(`\u001b[${code}m`)
    expect(plain).toContain('electing')
  })

  it('follows no-color.org: an empty NO_COLOR does not count', () => {
    expect(colorEnabled({ NO_COLOR: '' })).toBe(true)
    expect(colorEnabled({ NO_COLOR: 'yes' })).toBe(false)
  })
})
