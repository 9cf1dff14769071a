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
  /** Start paused, reading this migration stream (a restore), instead of booting. */
  incoming?: string
}

/**
 * The QEMU command line. A restore must use the same machine, memory and devices as the capture, so
 * everything here depends only on the manifest (plus host-side paths and ports, which a stream does not
 * carry). User networking is `restrict=on`: the guest reaches nothing; only the forwarded ports reach it.
 */
export function qemuArgs(input: QemuCommandInput): string[] {
  const { manifest } = input
  const forwards = [`hostfwd=tcp:127.0.0.1:${input.service_port}-:${manifest.ports.service}`]
  if (input.ssh_port !== undefined && manifest.ports.ssh !== undefined)
    forwards.push(`hostfwd=tcp:127.0.0.1:${input.ssh_port}-:${manifest.ports.ssh}`)
  const args = [
    ...['-accel', input.accel, '-machine', 'pc', '-m', String(manifest.memory_mib)],
    ...['-smp', String(manifest.cpus), '-nodefaults', '-display', 'none', '-no-user-config'],
    ...['-serial', `file:${input.console_log}`, '-qmp', `unix:${input.qmp_socket},server=on,wait=off`],
    // A guest reboot or power-off ends QEMU (reported as an exit); a panic pauses it for the driver.
    ...['-no-reboot', '-action', 'panic=pause', '-device', 'pvpanic'],
    ...['-nic', `user,model=virtio-net-pci,restrict=on,${forwards.join(',')}`],
  ]
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
  args.push(...manifest.qemu_args)
  return args
}
