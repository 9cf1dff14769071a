import { describe, expect, it } from 'vitest'
import { parseConfig } from '../../src/config/load.ts'
import { parseServiceManifest } from '../../src/drivers/process/manifest.ts'
import { clientPortEnv, resolveFrontDoorPorts } from '../../src/frontdoor/ports.ts'

const base = {
  version: 1,
  node: { name: 'n1' },
  federation: { name: 'f', secret: 'ab'.repeat(32) },
  service: { dir: '/srv/mail', port: 2525 },
}

const manifest = (client_ports: unknown[]) =>
  parseServiceManifest({ version: 1, name: 'mail', type: 'type1', command: ['x'], client_ports })

describe('front door ports', () => {
  it('defaults: bind 127.0.0.1, hold 10 s; SUSTAIN_PORT maps to service.port, others to service.ports', () => {
    const config = parseConfig({
      ...base,
      service: { ...base.service, ports: { submission: 2587 } },
      front_door: { ports: { smtp: 25, submission: 587 } },
    })
    expect(config.front_door).toMatchObject({ bind: '127.0.0.1', hold_ms: 10_000, max_held: 1000 })
    const declared = manifest([
      { name: 'smtp' },
      { name: 'submission', env: 'SUSTAIN_PORT_SUBMISSION', proxy_protocol: true },
    ]).client_ports
    expect(resolveFrontDoorPorts(config, declared)).toEqual({
      ok: true,
      ports: [
        { name: 'smtp', listen_port: 25, service_port: 2525, env: 'SUSTAIN_PORT', proxy_protocol: false },
        {
          name: 'submission',
          listen_port: 587,
          service_port: 2587,
          env: 'SUSTAIN_PORT_SUBMISSION',
          proxy_protocol: true,
        },
      ],
    })
    expect(clientPortEnv(declared, { submission: 2587 })).toEqual({ SUSTAIN_PORT_SUBMISSION: '2587' })
  })

  it('names every problem: unknown port, missing listen port, missing service port, clashes', () => {
    const config = parseConfig({ ...base, front_door: { ports: { smtp: 2525, imap: 143 } } })
    const declared = manifest([
      { name: 'smtp' },
      { name: 'submission', env: 'SUSTAIN_PORT_SUBMISSION' },
      { name: 'lmtp', env: 'SUSTAIN_PORT_LMTP' },
    ]).client_ports
    const result = resolveFrontDoorPorts(config, declared)
    expect(result.ok).toBe(false)
    const problems = result.ok ? [] : result.problems
    expect(problems).toEqual([
      'field front_door.ports.imap: got a port for "imap", expected one of the service\'s client ports (smtp, submission, lmtp)',
      'field front_door.ports.submission: missing, expected the TCP port this node listens on',
      'field front_door.ports.lmtp: missing, expected the TCP port this node listens on',
      "field front_door.ports.smtp: got 2525, the service's own port; expected another port",
    ])
  })

  it('the manifest refuses two client ports with one name or one variable, and bad variables', () => {
    expect(() => manifest([{ name: 'smtp' }, { name: 'smtp', env: 'SUSTAIN_PORT_X' }])).toThrow(
      /two client ports with name smtp/,
    )
    expect(() => manifest([{ name: 'a' }, { name: 'b' }])).toThrow(/two client ports with env SUSTAIN_PORT/)
    expect(() => manifest([{ name: 'a', env: 'PATH' }])).toThrow(/SUSTAIN_PORT or SUSTAIN_PORT_<NAME>/)
    expect(() => manifest([{ name: 'a', protocol: 'udp' }])).toThrow(/protocol/)
  })

  it('config check rejects a bad front_door section with the field named', () => {
    expect(() => parseConfig({ ...base, front_door: { hold_ms: -1 } })).toThrow(/front_door\.hold_ms/)
    expect(() => parseConfig({ ...base, front_door: { dns: { name: 'bad name!' } } })).toThrow(
      /front_door\.dns\.name/,
    )
  })
})
