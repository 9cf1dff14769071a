/**
 * What the system suite (`npm run test:system`: *.slow.test.ts and *.system.test.ts) needs from Debian,
 * in one table: the runner (test/system/run.ts) checks and installs from it, and each suite calls
 * requireTools() first, so a missing program fails the suite with the command that fixes it (never a skip).
 */
import { accessSync, constants, readdirSync } from 'node:fs'
import { delimiter, join } from 'node:path'
import { CRC32C_LIBRARY, crc32cAvailable } from '../../src/native/crc32c-preload.ts'

export interface Requirement {
  /** What a person reads: the program or file. */
  what: string
  /** Debian packages that provide it. */
  packages: string[]
  /** Which suites need it. */
  used_by: string
  present(): boolean
}

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK)
    return true
  } catch {
    return false
  }
}

/** On PATH (a bare name) or at an absolute path, executable. */
export function onPath(program: string, path = process.env['PATH'] ?? ''): boolean {
  if (program.includes('/')) return executable(program)
  return path.split(delimiter).some((dir) => dir !== '' && executable(join(dir, program)))
}

const program = (name: string, packages: string[], used_by: string): Requirement => ({
  what: name,
  packages,
  used_by,
  present: () => onPath(name),
})

export const REQUIREMENTS = {
  sshd: program('/usr/sbin/sshd', ['openssh-server'], 'test/ssh'),
  'ssh-keygen': program('ssh-keygen', ['openssh-client'], 'test/ssh'),
  tmux: program('tmux', ['tmux'], 'test/tui (ui, demo in a terminal)'),
  python3: program('python3', ['python3'], 'test/helpers, test/postfix, test/e2e (an mbox reader not ours)'),
  cc: program('cc', ['gcc', 'libc6-dev'], 'test/native (the hardware crc32c)'),
  crc32c: {
    what: CRC32C_LIBRARY,
    packages: [], // built from the sources by the runner once cc is there (`npm run build:native`)
    used_by: 'test/native',
    present: crc32cAvailable,
  },
  postfix: program('/usr/sbin/postfix', ['postfix'], 'test/postfix, test/e2e/postfix-partition'),
  qemu: program('qemu-system-x86_64', ['qemu-system-x86'], 'test/qemu'),
  'qemu-img': program('qemu-img', ['qemu-utils'], 'test/qemu'),
  busybox: program('/bin/busybox', ['busybox-static'], 'test/qemu (the guest)'),
  dropbear: program('/usr/sbin/dropbear', ['dropbear-bin'], 'test/qemu (the guest)'),
  cpio: program('cpio', ['cpio'], 'test/qemu (the guest)'),
  ip: program('ip', ['iproute2'], 'test/lan (network namespaces)'),
  nsenter: program('nsenter', ['util-linux'], 'test/lan (network namespaces)'),
  arping: program('arping', ['iputils-arping'], 'test/lan/vip (gratuitous ARP for the virtual IP)'),
  unshare: program(
    'unshare',
    ['util-linux'],
    'bench/faults (the fault lab: its own network, mount and PID namespaces)',
  ),
  iptables: program(
    'iptables',
    ['iptables'],
    'bench/faults, test/faults (partitions and loss by packet filter)',
  ),
  faketime: program('faketime', ['faketime'], 'bench/faults (a node whose clock is 60 s off)'),
  kernel: {
    what: '/boot/vmlinuz-*',
    packages: ['linux-image-amd64'],
    used_by: 'test/qemu (the guest)',
    present: () => {
      try {
        return readdirSync('/boot').some((name) => name.startsWith('vmlinuz-'))
      } catch {
        return false
      }
    },
  },
} satisfies Record<string, Requirement>

export type Tool = keyof typeof REQUIREMENTS

/** Every Debian package the system suite needs, each once, in table order. */
export function systemPackages(): string[] {
  return [...new Set(Object.values(REQUIREMENTS).flatMap((r) => r.packages))]
}

export function missing(tools: Tool[] = Object.keys(REQUIREMENTS) as Tool[]): Requirement[] {
  return tools.map((tool) => REQUIREMENTS[tool]).filter((r) => !r.present())
}

/** What fixes `absent`: the install command for its packages, and the runner that does it. */
export function fixFor(absent: Requirement[]): string {
  const packages = [...new Set(absent.flatMap((r) => r.packages))]
  const install = packages.length > 0 ? `apt-get install -y ${packages.join(' ')}` : null
  const build = absent.some((r) => r.packages.length === 0) ? 'npm run build:native' : null
  return [
    [install, build].filter((c) => c !== null).join(' && '),
    'or, as root: npm run test:system -- --install',
  ].join('; ')
}

/** Throws (failing the suite that calls it) when a tool is missing, naming the command that fixes it. */
export function requireTools(...tools: Tool[]): void {
  const absent = missing(tools)
  if (absent.length === 0) return
  throw new Error(`missing ${absent.map((r) => r.what).join(', ')}: ${fixFor(absent)}`)
}
