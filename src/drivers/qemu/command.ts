import { join } from 'node:path'
import { shellQuote } from '../ssh-helper.ts'
import type { Accel } from './accel.ts'
import type { QemuServiceManifest } from './manifest.ts'

/** The memory and device state (migration stream) inside the state directory. */
export const MEMORY_STATE_FILE = 'memory.state'

export function diskFileName(disk: QemuServiceManifest['disks'][number]): string {
  return `${disk.name}.${disk.format}`
}

/**
 * A disk's content in a snapshot taken while the guest ran: raw bytes at their disk offsets (the mirror of
 * DiskTracker). A raw disk's content is its file; a qcow2 disk's becomes its file again at the next start.
 */
export function diskContentName(disk: QemuServiceManifest['disks'][number]): string {
  return disk.format === 'raw' ? diskFileName(disk) : `${disk.name}.content.raw`
}

/** A host port on 127.0.0.1 that QEMU's user networking forwards to a guest port (`hostfwd`). */
export interface GuestForward {
  host_port: number
  guest_port: number
}

export interface QemuCommandInput {
  manifest: QemuServiceManifest
  accel: Accel
  /** Absolute paths: kernel and initrd resolved against the service directory. */
  kernel?: string
  initrd?: string
  state_dir: string
  qmp_socket: string
  console_log: string
  /** Host ports (127.0.0.1 only) forwarded to the guest's service and SSH ports. */
  service_port: number
  ssh_port?: number
  /** More host ports (127.0.0.1) forwarded into the guest: the client ports other than `ports.service`. */
  client_forwards?: readonly GuestForward[]
  /** Start paused, reading this migration stream (a restore), instead of booting. */
  incoming?: string
  /** Start paused, reading the migration stream the driver writes to this Unix socket (a page image). */
  incoming_socket?: string
}

/**
 * The QEMU command line. A restore must use the same machine, memory and devices as the capture, so
 * everything here depends only on the manifest (plus host-side paths and ports, which a stream does not
 * carry). User networking is `restrict=on`: the guest reaches nothing; only the forwarded ports reach it.
 * The forwards live in the netdev (slirp), not in the NIC's device state, so a restore (`-incoming`) gets
 * the same rules from this same function and the host ports may differ from the capturing node's.
 */
export function qemuArgs(input: QemuCommandInput): string[] {
  const { manifest } = input
  const args = [
    ...['-accel', input.accel, '-machine', 'pc', '-m', String(manifest.memory_mib)],
    ...['-smp', String(manifest.cpus), '-nodefaults', '-display', 'none', '-no-user-config'],
    ...['-serial', `file:${input.console_log}`, '-qmp', `unix:${input.qmp_socket},server=on,wait=off`],
    // A guest reboot or power-off ends QEMU (reported as an exit); a panic pauses it for the driver.
    ...['-no-reboot', '-action', 'panic=pause', '-device', 'pvpanic'],
  ]
  if (manifest.network === 'user') args.push('-nic', nicOption(input))
  else {
    if ((input.client_forwards ?? []).length > 0)
      throw new Error(
        `guest ${manifest.name} has no NIC (network: none): its client ports cannot be forwarded`,
      )
    args.push('-nic', 'none')
  }
  if (input.kernel) {
    args.push('-kernel', input.kernel, '-append', manifest.append)
    if (input.initrd) args.push('-initrd', input.initrd)
  }
  for (const [index, disk] of manifest.disks.entries()) {
    const file = join(input.state_dir, diskFileName(disk))
    // werror/rerror=stop: an I/O error pauses the guest and raises BLOCK_IO_ERROR instead of
    // letting it write around a hole.
    const boot = !input.kernel && index === 0 ? ',bootindex=0' : ''
    args.push(
      '-drive',
      `file=${file.replaceAll(',', ',,')},format=${disk.format},if=none,id=${disk.name},werror=stop,rerror=stop`,
      '-device',
      `virtio-blk-pci,drive=${disk.name}${boot}`,
    )
  }
  if (input.incoming) args.push('-incoming', `exec:cat ${shellQuote(input.incoming)}`)
  else if (input.incoming_socket) args.push('-incoming', `unix:${input.incoming_socket}`)
  args.push(...manifest.qemu_args)
  return args
}

function nicOption(input: QemuCommandInput): string {
  const ports = input.manifest.ports
  if (!ports) throw new Error(`guest ${input.manifest.name} has a NIC but no ports.service`)
  const forward = (host: number, guest: number) => `hostfwd=tcp:127.0.0.1:${host}-:${guest}`
  const forwards = [forward(input.service_port, ports.service)]
  if (input.ssh_port !== undefined && ports.ssh !== undefined)
    forwards.push(forward(input.ssh_port, ports.ssh))
  const hosts = new Set([input.service_port, input.ssh_port])
  for (const f of input.client_forwards ?? []) {
    // Two rules on one host port: QEMU would refuse to start with a message far from the cause.
    if (hosts.has(f.host_port))
      throw new Error(`host port ${f.host_port} is forwarded twice into guest ${input.manifest.name}`)
    hosts.add(f.host_port)
    forwards.push(forward(f.host_port, f.guest_port))
  }
  return `user,model=virtio-net-pci,restrict=on,${forwards.join(',')}`
}

/**
 * The hostfwd rules of the client ports other than `ports.service` (that one is the service port's own
 * rule): from the node's `service.ports`, by port name. A port without a host port there is not forwarded
 * (nothing reaches it; the front door's config check names it when a front door needs it).
 */
export function clientForwards(
  manifest: QemuServiceManifest,
  service_ports: Record<string, number> | undefined,
): GuestForward[] {
  const forwards: GuestForward[] = []
  for (const p of manifest.client_ports) {
    if (p.guest_port === manifest.ports?.service) continue
    const host_port = service_ports?.[p.name]
    if (host_port !== undefined) forwards.push({ host_port, guest_port: p.guest_port })
  }
  return forwards
}
