import { execFile } from 'node:child_process'
import { mkdir } from 'node:fs/promises'
import { promisify } from 'node:util'

const run = promisify(execFile)

/** The lab's own addresses: they exist only inside the lab's outer namespace (bench/faults/in-lab.sh). */
export const SUBNET = '10.78.0'
const BRIDGE = 'faultlab'
const CLIENT = 'fl-client'

export interface LabHost {
  /** Named network namespace (`ip netns exec NAME ...`). */
  ns: string
  address: string
}

export interface LabNet {
  nodes: LabHost[]
  client: LabHost
  /** Runs argv inside a host's namespace and resolves with its stdout (rejects on failure, 30 s bound). */
  exec(host: LabHost, argv: string[]): Promise<string>
  /** Argv prefix that runs a command inside a host's namespace. */
  launcher(host: LabHost): string[]
}

/** Every route (v4 and v6) of this namespace, or of the named one. */
async function routes(ns?: string): Promise<string> {
  const ip = (...argv: string[]) => run('ip', ns === undefined ? argv : ['netns', 'exec', ns, 'ip', ...argv])
  const [v4, v6] = await Promise.all([ip('route', 'show'), ip('-6', 'route', 'show')])
  return `${v4.stdout}${v6.stdout}`.trim()
}

/**
 * Builds the lab inside the namespaces in-lab.sh made (network, mount, PID): a bridge, one namespace
 * per node and one for the clients, each with a veth on the bridge and a 10.78.0.x address. Refuses to
 * start when this namespace has any route (it would be the host's network), and checks that every host
 * routes only the lab's subnet.
 */
export async function startLabNet(count: number): Promise<LabNet> {
  if (process.env['SUSTAIN_FAULT_LAB'] !== '1') {
    throw new Error('the fault lab runs only inside bench/faults/in-lab.sh (npm run faults)')
  }
  const outside = await routes()
  if (outside !== '') throw new Error(`refusing to start: the lab's namespace has routes out:\n${outside}`)
  // Named namespaces live on a tmpfs of this mount namespace, so they vanish with the lab.
  await mkdir('/run/netns', { recursive: true })
  await run('mount', ['-t', 'tmpfs', 'tmpfs', '/run/netns'])
  await run('ip', ['link', 'set', 'lo', 'up'])
  await run('ip', ['link', 'add', BRIDGE, 'type', 'bridge'])
  await run('ip', ['link', 'set', BRIDGE, 'up'])
  const add = async (ns: string, octet: number, veth: string): Promise<LabHost> => {
    const address = `${SUBNET}.${octet}`
    await run('ip', ['netns', 'add', ns])
    await run('ip', ['link', 'add', veth, 'type', 'veth', 'peer', 'name', `${veth}-br`])
    await run('ip', ['link', 'set', `${veth}-br`, 'master', BRIDGE, 'up'])
    await run('ip', ['link', 'set', veth, 'netns', ns])
    const inNs = (...argv: string[]) => run('ip', ['netns', 'exec', ns, ...argv])
    await inNs('ip', 'link', 'set', 'lo', 'up')
    await inNs('ip', 'addr', 'add', `${address}/24`, 'dev', veth)
    await inNs('ip', 'link', 'set', veth, 'up')
    const table = await routes(ns)
    const others = table.split('\n').filter((line) => !line.startsWith(`${SUBNET}.0/24 `) && line !== '')
    // IPv6 link-local routes (fe80::/64, multicast) stay on the bridge; anything else would lead out.
    if (others.some((line) => !/^(fe80::\/64|multicast ff00::\/8|ff00::\/8) /.test(line))) {
      throw new Error(`refusing to start: ${ns} has a route beyond the lab:\n${table}`)
    }
    return { ns, address }
  }
  const nodes: LabHost[] = []
  for (let i = 0; i < count; i++) nodes.push(await add(`fl-node${i}`, 10 + i, `fln${i}`))
  const client = await add(CLIENT, 2, 'flc')
  return {
    nodes,
    client,
    exec: async (host, argv) =>
      (await run('ip', ['netns', 'exec', host.ns, ...argv], { timeout: 30_000, encoding: 'utf8' })).stdout,
    launcher: (host) => ['ip', 'netns', 'exec', host.ns],
  }
}
