import { describe, expect, it } from 'vitest'
import { formatHostPort, hostPortText, parseHostPort } from '../../src/config/host-port.ts'

describe('bootstrap nodes: host:port (src/config/host-port.ts)', () => {
  it('reads host:port strings and {host, port} objects alike', () => {
    expect(parseHostPort('192.0.2.7:49737')).toEqual({ host: '192.0.2.7', port: 49737 })
    expect(parseHostPort(' node-a.lan:1 ')).toEqual({ host: 'node-a.lan', port: 1 })
    expect(parseHostPort({ host: '192.0.2.7', port: 65_535 })).toEqual({ host: '192.0.2.7', port: 65_535 })
    expect(hostPortText({ host: 'a', port: 2 })).toBe('a:2')
    expect(formatHostPort({ host: 'a', port: 2 })).toBe('a:2')
  })

  it('refuses anything else', () => {
    for (const bad of [
      '192.0.2.7',
      ':49737',
      'a:0',
      'a:65536',
      'a:1:2',
      'a b:1',
      'a:1x',
      '',
      49737,
      null,
      [],
      { host: 'a' },
      { host: 'a', port: '1' },
      { host: 'a', port: 1.5 },
      { host: 'a', port: 1, extra: true },
      { host: '', port: 1 },
      { host: 'a:b', port: 1 },
    ]) {
      expect(parseHostPort(bad), JSON.stringify(bad)).toBeNull()
    }
  })
})
