import { describe, expect, it } from 'vitest'
import { ConfigError } from '../../src/config/config-error.ts'
import { parseConfig } from '../../src/config/load.ts'

const base = {
  version: 1,
  node: { name: 'n1' },
  federation: { name: 'f', secret: 'a'.repeat(64) },
  service: { dir: '/srv/mail', port: 2525 },
  front_door: { ports: { smtp: 2500 } },
}

function withCommit(value: unknown, front_door = true) {
  const { front_door: door, ...rest } = base
  return {
    ...rest,
    ...(front_door ? { front_door: door } : {}),
    service: { ...base.service, output_commit: value },
  }
}

describe('service.output_commit', () => {
  it('defaults to off', () => {
    expect(parseConfig(base).service?.output_commit).toBe('off')
  })

  it('takes off or a number of candidates', () => {
    expect(parseConfig(withCommit('off')).service?.output_commit).toBe('off')
    expect(parseConfig(withCommit(1)).service?.output_commit).toBe(1)
    expect(parseConfig(withCommit(2)).service?.output_commit).toBe(2)
  })

  it.each([0, -1, 1.5, 33, 'on', true])('refuses %j with a clear error', (value) => {
    expect(() => parseConfig(withCommit(value))).toThrow(ConfigError)
    expect(() => parseConfig(withCommit(value))).toThrow(/output_commit/)
  })

  it('refuses output commit without a front door, saying why', () => {
    expect(() => parseConfig(withCommit(1, false))).toThrow(/output_commit needs a front_door/)
    expect(parseConfig(withCommit('off', false)).service?.output_commit).toBe('off')
  })
})
