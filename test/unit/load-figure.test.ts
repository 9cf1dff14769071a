import { tmpdir } from 'node:os'
import { describe, expect, it } from 'vitest'
import { parseConfig } from '../../src/config/load.ts'
import { loadFigure, roomBytes } from '../../src/runtime/load-figure.ts'

describe('load figure for the capacity election', () => {
  it('the scarcer of CPU and memory decides, per unit of declared capacity, with the service counted', () => {
    expect(loadFigure({ cpu_per_core: 0, memory_used: 0 }, 1)).toBeCloseTo(1)
    expect(loadFigure({ cpu_per_core: 0, memory_used: 0 }, 2)).toBeCloseTo(0.5)
    expect(loadFigure({ cpu_per_core: 1, memory_used: 0.2 }, 1)).toBeCloseTo(2)
    expect(loadFigure({ cpu_per_core: 0.1, memory_used: 0.9 }, 1)).toBeCloseTo(1.9)
  })

  it('noise below the quantum does not change the figure (no election flapping on load-average jitter)', () => {
    const a = loadFigure({ cpu_per_core: 0.5, memory_used: 0 }, 1)
    expect(loadFigure({ cpu_per_core: 0.51, memory_used: 0 }, 1)).toBe(a)
  })

  it('election.capacity_weight defaults to 1 and must be positive', () => {
    const base = { version: 1, node: { name: 'n' }, federation: { name: 'f', secret: 'a'.repeat(64) } }
    expect(parseConfig(base).election.capacity_weight).toBe(1)
    expect(() => parseConfig({ ...base, election: { capacity_weight: 0 } })).toThrow(/capacity_weight/)
    expect(() => loadFigure({ cpu_per_core: 0, memory_used: 0 }, 0)).toThrow(/capacity_weight/)
  })

  it('room: free disk of the data directory less the reserve, in whole MiB, never below 0', async () => {
    const room = await roomBytes(tmpdir(), 0)
    expect(room).toBeGreaterThan(0)
    expect(room! % (1 << 20)).toBe(0)
    expect(await roomBytes(tmpdir(), room! - (1 << 20))).toBeLessThanOrEqual(2 << 20)
    expect(await roomBytes(tmpdir(), Number.MAX_SAFE_INTEGER)).toBe(0)
    expect(await roomBytes('/nonexistent/sustain', 0)).toBeNull()
  })

  it('node.site and node.disk_reserve_bytes: optional label, non-negative whole bytes (config check)', () => {
    const base = { version: 1, node: { name: 'n' }, federation: { name: 'f', secret: 'a'.repeat(64) } }
    const parsed = parseConfig(base)
    expect([parsed.node.site, parsed.node.disk_reserve_bytes]).toEqual([undefined, 0])
    const at = (node: object) => parseConfig({ ...base, node: { name: 'n', ...node } }).node
    expect(at({ site: 'attic-2', disk_reserve_bytes: 1e9 })).toMatchObject({
      site: 'attic-2',
      disk_reserve_bytes: 1e9,
    })
    expect(() => at({ site: 'the attic' })).toThrow(/node\.site/)
    expect(() => at({ disk_reserve_bytes: -1 })).toThrow(/disk_reserve_bytes/)
    expect(() => at({ disk_reserve_bytes: 1.5 })).toThrow(/disk_reserve_bytes/)
  })
})
