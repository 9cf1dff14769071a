import { describe, expect, it } from 'vitest'
import { chooseRoute, type RouteView } from '../../src/frontdoor/route.ts'

const base: RouteView = {
  id: 'me',
  role: 'candidate',
  health: 'unknown',
  server: 'srv',
  server_peer: { reachable: true, role: 'server' },
  connect_proves_listening: true,
}

describe('front door route (route.ts chooseRoute)', () => {
  it('a server whose service answers serves locally', () => {
    expect(chooseRoute({ ...base, role: 'server', server: 'me', health: 'ok' })).toEqual({ kind: 'local' })
  })

  it('a freshly restored server, before its first probe, serves locally when a connect proves listening', () => {
    const server = { ...base, role: 'server', server: 'me', health: 'unknown' }
    expect(chooseRoute(server)).toEqual({ kind: 'local' })
    // QEMU user networking accepts for a guest that does not listen: wait for the probe there.
    expect(chooseRoute({ ...server, connect_proves_listening: false })).toBeNull()
  })

  it('a server whose service failed its probe holds clients', () => {
    expect(chooseRoute({ ...base, role: 'server', server: 'me', health: 'down' })).toBeNull()
  })

  it('a candidate forwards to its server only while that server is reachable and says it serves', () => {
    expect(chooseRoute(base)).toEqual({ kind: 'remote', key: 'srv' })
    expect(chooseRoute({ ...base, server_peer: { reachable: false, role: 'server' } })).toBeNull()
    expect(chooseRoute({ ...base, server_peer: { reachable: true, role: 'restoring' } })).toBeNull()
    expect(chooseRoute({ ...base, server_peer: null })).toBeNull()
    expect(chooseRoute({ ...base, server: null })).toBeNull()
    expect(chooseRoute({ ...base, role: 'electing', server: 'me' })).toBeNull()
  })
})
