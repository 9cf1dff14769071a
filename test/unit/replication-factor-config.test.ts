import { describe, expect, it } from 'vitest'
import { parseConfig } from '../../src/config/load.ts'
import { overlayReplicationFactor } from '../../src/runtime/snapshot-shares.ts'

const base = {
  version: 1,
  node: { name: 'n1' },
  federation: { name: 'f', secret: 'a'.repeat(64) },
}

describe('snapshots.replication_factor', () => {
  it('defaults to all (every member keeps every snapshot whole, the overlay factor 0)', () => {
    const config = parseConfig(base)
    expect(config.snapshots.replication_factor).toBe('all')
    expect(overlayReplicationFactor(config)).toBe(0)
    expect(parseConfig({ ...base, snapshots: { keep: 2 } }).snapshots.replication_factor).toBe('all')
  })

  it('takes r from 1 to 64', () => {
    const config = parseConfig({ ...base, snapshots: { replication_factor: 3 } })
    expect(overlayReplicationFactor(config)).toBe(3)
  })

  it.each([0, -1, 2.5, 65, 'two'])('refuses %s with the field named', (r) => {
    expect(() => parseConfig({ ...base, snapshots: { replication_factor: r } })).toThrow(
      /snapshots\.replication_factor/,
    )
  })
})
