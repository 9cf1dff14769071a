import { describe, expect, it } from 'vitest'
import { ConfigError } from '../../src/config/config-error.ts'
import { parseConfig } from '../../src/config/load.ts'
import { vipCidr } from '../../src/frontdoor/vip.ts'

const base = {
  version: 1,
  node: { name: 'n1' },
  federation: { name: 'f', secret: 'a'.repeat(64) },
  service: { dir: '/srv/mail', port: 2525 },
}

const withVip = (vip: unknown, bind = '0.0.0.0') => ({
  ...base,
  front_door: { bind, ports: { smtp: 25 }, vip },
})

describe('front_door.vip', () => {
  it('is absent by default', () => {
    expect(parseConfig({ ...base, front_door: { ports: { smtp: 25 } } }).front_door?.vip).toBeUndefined()
  })

  it('takes an IPv4 address with or without a prefix, and an interface', () => {
    const vip = { address: '192.168.1.100/24', interface: 'eth0' }
    expect(parseConfig(withVip(vip)).front_door?.vip).toEqual(vip)
    expect(
      parseConfig(withVip({ address: '10.0.0.5', interface: 'br-lan.2' })).front_door?.vip?.address,
    ).toBe('10.0.0.5')
    expect(vipCidr('10.0.0.5')).toBe('10.0.0.5/32')
    expect(vipCidr('10.0.0.5/24')).toBe('10.0.0.5/24')
  })

  it.each([
    [{ address: '192.168.1.300', interface: 'eth0' }, /IPv4 address/],
    [{ address: '192.168.1.1/33', interface: 'eth0' }, /IPv4 address/],
    [{ address: 'fe80::1', interface: 'eth0' }, /IPv4 address/],
    [{ address: '10.0.0.1', interface: 'a-name-longer-than-15' }, /interface name/],
    [{ address: '10.0.0.1', interface: 'eth0; reboot' }, /interface name/],
    [{ address: '10.0.0.1' }, /interface/],
    [{ address: '10.0.0.1', interface: 'eth0', extra: 1 }, /extra/],
  ])('refuses %j with a clear error', (vip, message) => {
    expect(() => parseConfig(withVip(vip))).toThrow(ConfigError)
    expect(() => parseConfig(withVip(vip))).toThrow(message)
  })

  it('needs the front door on every address (the VIP comes and goes)', () => {
    const vip = { address: '10.0.0.100/24', interface: 'eth0' }
    expect(parseConfig(withVip(vip, '::')).front_door?.vip).toEqual(vip)
    expect(() => parseConfig(withVip(vip, '10.0.0.1'))).toThrow(
      /front_door.vip needs front_door.bind 0.0.0.0/,
    )
  })
})
