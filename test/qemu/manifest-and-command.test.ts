import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { ConfigError } from '../../src/config/load.ts'
import { qemuArgs } from '../../src/drivers/qemu/command.ts'
import { loadQemuManifest, manifestDriverKind, parseQemuManifest } from '../../src/drivers/qemu/manifest.ts'

const EXAMPLE = fileURLToPath(new URL('../../examples/qemu-guest', import.meta.url))
const MAIL = fileURLToPath(new URL('../../examples/mail', import.meta.url))

describe('QEMU service manifest', () => {
  it('reads the example guest manifest with its defaults; tells the driver kind', async () => {
    const manifest = await loadQemuManifest(EXAMPLE)
    expect(manifest).toMatchObject({
      driver: 'qemu',
      memory_mib: 128,
      disks: [{ name: 'data', image: 'out/data.img', format: 'raw' }],
      ports: { service: 7000, ssh: 22 },
      qemu_args: [],
    })
    expect(await manifestDriverKind(EXAMPLE)).toBe('qemu')
    expect(await manifestDriverKind(MAIL)).toBe('process')
  })

  it('names every bad field', () => {
    const bad = {
      version: 1,
      name: 'vm',
      type: 'type1',
      driver: 'qemu',
      memory_mib: 4,
      disks: [{ name: 'bad name', format: 'vmdk' }],
      ports: { service: 0 },
    }
    let error: unknown
    try {
      parseQemuManifest(bad)
    } catch (e) {
      error = e
    }
    expect(error).toBeInstanceOf(ConfigError)
    const message = (error as Error).message
    expect(message).toContain('field memory_mib')
    expect(message).toContain('field disks.0.name')
    expect(message).toContain('field disks.0.format')
    expect(message).toContain('field ports.service')
  })
})

describe('QEMU command line', () => {
  const manifest = parseQemuManifest({
    version: 1,
    name: 'vm',
    type: 'type1',
    driver: 'qemu',
    kernel: 'k',
    disks: [{ name: 'data', size_mib: 8 }],
    ports: { service: 7000, ssh: 22 },
  })
  const base = {
    manifest,
    accel: 'tcg' as const,
    kernel: '/svc/k',
    state_dir: '/st,ate',
    qmp_socket: '/run/q.sock',
    console_log: '/run/c.log',
    service_port: 17000,
    ssh_port: 17022,
  }

  it('forwards the service and SSH ports on 127.0.0.1 only, with a restricted network and pvpanic', () => {
    const args = qemuArgs(base)
    const nic = args[args.indexOf('-nic') + 1]!
    expect(nic).toContain('restrict=on')
    expect(nic).toContain('hostfwd=tcp:127.0.0.1:17000-:7000')
    expect(nic).toContain('hostfwd=tcp:127.0.0.1:17022-:22')
    expect(args.join(' ')).toContain('-accel tcg')
    expect(args).toContain('pvpanic')
    expect(args).toContain('-no-reboot')
    // Commas in paths are doubled (QEMU option syntax); the drive stops on I/O errors.
    expect(args).toContain('file=/st,,ate/data.raw,format=raw,if=none,id=data,werror=stop,rerror=stop')
    expect(args).not.toContain('-incoming')
  })

  it('a restore reads the memory stream through a quoted path', () => {
    const args = qemuArgs({ ...base, incoming: "/state/it's/memory.state" })
    expect(args.slice(-2)).toEqual(['-incoming', `exec:cat '/state/it'\\''s/memory.state'`])
  })

  it('a restore from a page image reads the stream the driver encodes into a Unix socket', () => {
    const args = qemuArgs({ ...base, incoming_socket: '/tmp/run/incoming.sock' })
    expect(args.slice(-2)).toEqual(['-incoming', 'unix:/tmp/run/incoming.sock'])
  })
})
