import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { parse as parseYaml, stringify } from 'yaml'
import { ConfigError, parseConfig } from '../../src/config/load.ts'
import { clientForwards, qemuArgs } from '../../src/drivers/qemu/command.ts'
import { loadQemuManifest, parseQemuManifest } from '../../src/drivers/qemu/manifest.ts'
import { loadFrontDoorPorts } from '../../src/frontdoor/load-ports.ts'
import { qemuDeclaredPorts, resolveFrontDoorPorts } from '../../src/frontdoor/ports.ts'

const EXAMPLE = fileURLToPath(new URL('../../examples/qemu-guest', import.meta.url))

const guest = (extra: Record<string, unknown> = {}) =>
  parseQemuManifest({
    version: 1,
    name: 'vm',
    type: 'type1',
    driver: 'qemu',
    kernel: 'k',
    ports: { service: 7000, ssh: 22 },
    client_ports: [
      { name: 'counter', guest_port: 7000 },
      { name: 'ack', guest_port: 7001, proxy_protocol: true },
    ],
    ...extra,
  })

const node = (dir: string, extra: Record<string, unknown> = {}) =>
  parseConfig({
    version: 1,
    node: { name: 'n1' },
    federation: { name: 'f', secret: 'ab'.repeat(32) },
    service: { dir, port: 17000, ports: { ack: 17001 } },
    front_door: { ports: { counter: 27000, ack: 27001 } },
    ...extra,
  })

const nicOf = (args: string[]) => args[args.indexOf('-nic') + 1]!

describe('client ports of a QEMU guest', () => {
  const manifest = guest()
  const base = {
    manifest,
    accel: 'tcg' as const,
    kernel: '/svc/k',
    state_dir: '/state',
    qmp_socket: '/run/q.sock',
    console_log: '/run/c.log',
    service_port: 17000,
    ssh_port: 17022,
  }

  it('the one on ports.service rides the service port; every other gets a hostfwd from service.ports', () => {
    expect(clientForwards(manifest, { ack: 17001, counter: 9999 })).toEqual([
      { host_port: 17001, guest_port: 7001 },
    ])
    // No host port configured: not forwarded (a front door that needs it says so at config check).
    expect(clientForwards(manifest, undefined)).toEqual([])
  })

  it('the same forwards at boot and at a restore (-incoming): the restored NIC meets the same netdev', () => {
    const client_forwards = clientForwards(manifest, { ack: 17001 })
    const boot = qemuArgs({ ...base, client_forwards })
    const restore = qemuArgs({ ...base, client_forwards, incoming: '/state/memory.state' })
    expect(nicOf(boot)).toBe(
      'user,model=virtio-net-pci,restrict=on,hostfwd=tcp:127.0.0.1:17000-:7000,' +
        'hostfwd=tcp:127.0.0.1:17022-:22,hostfwd=tcp:127.0.0.1:17001-:7001',
    )
    expect(nicOf(restore)).toBe(nicOf(boot))
    expect(restore.slice(0, -2)).toEqual(boot)
    expect(() => qemuArgs({ ...base, client_forwards: [{ host_port: 17022, guest_port: 7001 }] })).toThrow(
      /host port 17022 is forwarded twice/,
    )
  })

  it('resolves to front door ports like a process service, naming the guest port when one is missing', () => {
    const declared = qemuDeclaredPorts(manifest)
    expect(resolveFrontDoorPorts(node('/svc'), declared)).toEqual({
      ok: true,
      ports: [
        {
          name: 'counter',
          listen_port: 27000,
          service_port: 17000,
          env: 'SUSTAIN_PORT',
          proxy_protocol: false,
        },
        {
          name: 'ack',
          listen_port: 27001,
          service_port: 17001,
          env: 'SUSTAIN_PORT_ACK',
          proxy_protocol: true,
        },
      ],
    })
    const without = node('/svc', { service: { dir: '/svc', port: 17000 } })
    expect(resolveFrontDoorPorts(without, declared)).toEqual({
      ok: false,
      problems: ['field service.ports.ack: missing, expected the loopback port forwarded to guest port 7001'],
    })
  })

  it('a guest without a NIC: the manifest refuses what needs one, the front door says why', async () => {
    const bare = { version: 1, name: 'vm', type: 'type1', driver: 'qemu', kernel: 'k', network: 'none' }
    expect(parseQemuManifest(bare).network).toBe('none')
    expect(qemuArgs({ ...base, manifest: parseQemuManifest(bare) })).toContain('none')
    let message = ''
    try {
      parseQemuManifest({
        ...bare,
        ports: { service: 7000 },
        client_ports: [{ name: 'ack', guest_port: 7001 }],
      })
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError)
      message = (error as Error).message
    }
    expect(message).toContain(
      'field ports: got {"service":7000}, expected nothing: ports is reached through a NIC',
    )
    expect(message).toContain('field client_ports: got')
    expect(() => parseQemuManifest({ ...bare, network: 'user' })).toThrow(/field ports: got nothing/)
    expect(() =>
      parseQemuManifest({
        ...bare,
        client_ports: [
          { name: 'a', guest_port: 1 },
          { name: 'b', guest_port: 1 },
        ],
        network: 'user',
        ports: { service: 2 },
      }),
    ).toThrow(/two client ports with guest_port 1/)

    const dir = await mkdtemp(join(tmpdir(), 'sustain-qemu-ports-'))
    try {
      await writeFile(join(dir, 'sustain-service.yaml'), stringify(bare))
      await expect(loadFrontDoorPorts(node(dir))).rejects.toThrow(
        /has no NIC \(network: none\): no client port can reach it/,
      )
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('the example guest declares its acknowledging line service; a node config fits it', async () => {
    const example = await loadQemuManifest(EXAMPLE)
    expect(example.client_ports).toEqual([
      { name: 'ack', protocol: 'tcp', guest_port: 7001, proxy_protocol: false },
    ])
    const dir = await mkdtemp(join(tmpdir(), 'sustain-qemu-ports-'))
    try {
      await cp(join(EXAMPLE, 'sustain-service.yaml'), join(dir, 'sustain-service.yaml'))
      const ports = await loadFrontDoorPorts(node(dir, { front_door: { ports: { ack: 27001 } } }))
      expect(ports).toEqual([
        {
          name: 'ack',
          listen_port: 27001,
          service_port: 17001,
          env: 'SUSTAIN_PORT_ACK',
          proxy_protocol: false,
        },
      ])
      const yaml = parseYaml(await readFile(join(dir, 'sustain-service.yaml'), 'utf8')) as object
      await writeFile(join(dir, 'sustain-service.yaml'), stringify({ ...yaml, client_ports: [] }))
      await expect(loadFrontDoorPorts(node(dir, { front_door: { ports: { ack: 27001 } } }))).rejects.toThrow(
        /front door does not fit the service/,
      )
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})
