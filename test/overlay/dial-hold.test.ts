import { describe, expect, it } from 'vitest'
import { DIAL_HOLD_STEPS_MS, DialHold } from '../../overlay/dial-hold.ts'

describe('dial hold', () => {
  it('holds a peer that went away, releases it for one probe window, holds longer when it stays away', () => {
    let now = 0
    const released: string[] = []
    const hold = new DialHold({
      release: (key) => released.push(key),
      probe_window_ms: 1000,
      now_ms: () => now,
    })
    hold.closed('a')
    expect(hold.isHeld('a')).toBe(true)
    expect(hold.isHeld('b')).toBe(false)
    now = DIAL_HOLD_STEPS_MS[0] - 1
    hold.tick()
    expect(hold.isHeld('a')).toBe(true)
    now = DIAL_HOLD_STEPS_MS[0]
    hold.tick()
    expect(released).toEqual(['a'])
    expect(hold.isHeld('a')).toBe(false) // probing: hyperswarm may dial it
    now += 1000
    hold.tick() // did not come back: held again, for the next step
    expect(hold.isHeld('a')).toBe(true)
    now += DIAL_HOLD_STEPS_MS[1] - 1
    hold.tick()
    expect(hold.isHeld('a')).toBe(true)
    now += 1
    hold.tick()
    expect(released).toEqual(['a', 'a'])
    // Admitted during its probe window: history forgotten, next close starts at the first step again.
    hold.admitted('a')
    expect(hold.size).toBe(0)
    hold.closed('a')
    now += DIAL_HOLD_STEPS_MS[0]
    hold.tick()
    expect(released).toEqual(['a', 'a', 'a'])
  })

  it('the hold never grows past the last step', () => {
    let now = 0
    const hold = new DialHold({ release: () => {}, probe_window_ms: 10, now_ms: () => now })
    hold.closed('a')
    for (let i = 0; i < 20; i++) {
      now += 120_000
      hold.tick() // release
      now += 10
      hold.tick() // probe failed: held again
    }
    const last = DIAL_HOLD_STEPS_MS.at(-1)!
    now += last - 1
    hold.tick()
    expect(hold.isHeld('a')).toBe(true)
    now += 1
    hold.tick()
    expect(hold.isHeld('a')).toBe(false)
  })
})
