import { describe, expect, it } from 'vitest'
import { parseServiceManifest } from '../../src/drivers/process/manifest.ts'
import { LeastConnections } from '../../src/frontdoor/least-connections.ts'

const manifest = (extra: Record<string, unknown>) =>
  parseServiceManifest({ version: 1, name: 'web', type: 'type0', command: ['x'], ...extra })

describe('manifest replicas (Type0)', () => {
  it('absent: one server with snapshots, as before', () => {
    expect(manifest({}).replicas).toBeUndefined()
  })

  it('a type0 service may ask for several', () => {
    expect(manifest({ replicas: 3 }).replicas).toBe(3)
  })

  it('a service with state may not, and the error says why and what to do', () => {
    expect(() => manifest({ type: 'type1', replicas: 2 })).toThrow(
      /field replicas: got 2, expected type: type0 .*type1, whose copies' state would diverge.*remove replicas/,
    )
  })

  it('not a positive integer within bounds: refused, naming the field', () => {
    expect(() => manifest({ replicas: 0 })).toThrow(/field replicas: got 0/)
    expect(() => manifest({ replicas: 1.5 })).toThrow(/field replicas: got 1.5/)
    expect(() => manifest({ replicas: 1000 })).toThrow(/field replicas: got 1000/)
    expect(() => manifest({ replicas: '2' })).toThrow(/field replicas: got "2"/)
  })
})

describe('least connections (front door among replicas)', () => {
  const local = { kind: 'local' } as const
  const a = { kind: 'remote', key: 'aa' } as const
  const b = { kind: 'remote', key: 'bb' } as const

  it('sends a new connection to the route with the fewest open, the local one counted too', () => {
    const least = new LeastConnections()
    least.opened('local')
    least.opened('local')
    least.opened('aa')
    expect(least.pick([local, a, b])).toEqual(b)
    least.opened('bb')
    least.opened('bb')
    expect(least.pick([local, a, b])).toEqual(a)
  })

  it('ties go round in turn: connections made one after another spread too', () => {
    const least = new LeastConnections()
    const picked = Array.from({ length: 6 }, () => least.pick([local, a, b]))
    expect(picked.filter((r) => r === local)).toHaveLength(2)
    expect(picked.filter((r) => r === a)).toHaveLength(2)
    expect(picked.filter((r) => r === b)).toHaveLength(2)
  })

  it('no route: null; a close without an open is a bug, caught', () => {
    const least = new LeastConnections()
    expect(least.pick([])).toBeNull()
    least.opened('aa')
    least.closed('aa')
    expect(least.snapshot()).toEqual({})
    expect(() => least.closed('aa')).toThrow(/more closes than opens/)
  })
})
