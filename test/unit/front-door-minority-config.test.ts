import { describe, expect, it } from 'vitest'
import { parseConfig } from '../../src/config/load.ts'

const base = {
  version: 1,
  node: { name: 'n1' },
  federation: { name: 'f', secret: 'a'.repeat(64) },
}

describe('front_door.minority (Type3 / refuse-to-split: hold or refuse on the side without a majority)', () => {
  it('defaults to hold', () => {
    expect(parseConfig({ ...base, front_door: {} }).front_door?.minority).toBe('hold')
  })

  it('takes refuse', () => {
    expect(parseConfig({ ...base, front_door: { minority: 'refuse' } }).front_door?.minority).toBe('refuse')
  })

  it.each(['drop', true, 1])('refuses %s with the field named', (value) => {
    expect(() => parseConfig({ ...base, front_door: { minority: value } })).toThrow(/front_door\.minority/)
  })
})
