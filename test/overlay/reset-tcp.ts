import { execFileSync } from 'node:child_process'

/**
 * Reset every established TCP connection of process `pid` from outside it (`ss -K`, the kernel's
 * SOCK_DESTROY): the process sees ECONNABORTED, its peers a reset, while it lives on. The data lanes
 * are a node's only TCP connections (its control and data planes are UDP), so this is a lane blip.
 * Returns how many connections were reset.
 */
export function resetTcpOf(pid: number): number {
  const listing = execFileSync('ss', ['-tnpH', 'state', 'established'], { encoding: 'utf8' })
  const ports = new Set<string>()
  for (const line of listing.split('\n')) {
    if (!line.includes(`pid=${pid},`)) continue
    // Recv-Q Send-Q Local:Port Peer:Port Process
    const local = line.trim().split(/\s+/)[2]
    const port = local?.slice(local.lastIndexOf(':') + 1)
    if (port) ports.add(port)
  }
  let reset = 0
  for (const port of ports) {
    const out = execFileSync('ss', ['-tnKH', 'state', 'established', 'src', `127.0.0.1:${port}`], {
      encoding: 'utf8',
    })
    reset += out.split('\n').filter((l) => l.trim().length > 0).length
  }
  return reset
}
