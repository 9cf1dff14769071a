import { describe, expect, it } from 'vitest'
import { parseConfig } from '../../src/config/load.ts'
import { loadFigure } from '../../src/runtime/load-figure.ts'

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
})
