import { execFile } from 'node:child_process'
import { mkdir, readdir, readFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { parse, stringify } from 'yaml'
import { writeFileAtomic } from '../../lib/atomic-write.ts'
import { initNode } from '../../src/config/init-node.ts'
import { encodeInvite } from '../../src/config/invite.ts'
import { LocalNode } from '../../src/demo/local-federation.ts'
import { nodePaths } from '../../src/runtime/paths.ts'
import type { LabHost, LabNet } from './lab-net.ts'

const run = promisify(execFile)
const ROOT = fileURLToPath(new URL('../../', import.meta.url))
export const BOOTSTRAP_PORT = 49737
/** Every node's front door for the mail service's `smtp` port, on its lab address. */
export const DOOR_PORT = 25
/** The service's own port, on each node's loopback (each namespace has its own). */
const SERVICE_PORT = 2525

export interface LabNodeOptions {
  /** `off`, or a number k: passed to the service as `output_commit` (the key the output-commit work adds). */
  output_commit: string
  snapshot_interval_ms: number
  /** Each node's service/ directory on a tmpfs of this size (MiB) in the lab's mount namespace (disk-full). */
  small_disk_mib?: number
}

/** One node of the lab: a `sustain join` process in its host's namespace (LocalNode does the process). */
export class LabNode extends LocalNode {
  /** Wall-clock offset this node runs under (faketime), so its timeline lines can be put back in order. */
  clock_offset_ms = 0

  constructor(
    index: number,
    data_dir: string,
    config_path: string,
    readonly host: LabHost,
    private readonly lab: LabNet,
  ) {
    super(index, `n${index}`, data_dir, SERVICE_PORT, [config_path, '--json'], null, lab.launcher(host))
  }

  /** The next start runs under `faketime` `offset_ms` ahead (negative: behind), or at the true time (0). */
  setClock(offset_ms: number): void {
    this.clock_offset_ms = offset_ms
    const shift = offset_ms === 0 ? [] : ['faketime', '-f', `${offset_ms > 0 ? '+' : ''}${offset_ms / 1000}s`]
    this.launcher = [...this.lab.launcher(this.host), ...shift]
  }

  get door(): string {
    return `${this.host.address}:${DOOR_PORT}`
  }

  get mailbox_path(): string {
    return join(nodePaths(this.data_dir).service_state, 'mail', 'lab')
  }
}

/**
 * Writes node i's data directory like `sustain init` (node 0 a new federation, the others by invite
 * from `secret`): it serves a DHT bootstrap node on its own lab address, so no single node is the DHT,
 * has a front door on its lab address and the mail example as its service. Returns the config's path.
 */
export async function writeNodeDir(
  lab: LabNet,
  data: string,
  i: number,
  secret: string | null,
  options: LabNodeOptions,
): Promise<{ path: string; secret: string }> {
  const bootstrap = lab.nodes.map((h) => `${h.address}:${BOOTSTRAP_PORT}`)
  const host = lab.nodes[i]!
  await mkdir(data, { recursive: true })
  // The service's state directory and its staging area (the process driver keeps both in service/).
  const service = join(data, 'service')
  if (options.small_disk_mib !== undefined && !(await mounted(service))) {
    await mkdir(service, { recursive: true })
    await run('mount', ['-t', 'tmpfs', '-o', `size=${options.small_disk_mib}m,mode=0711`, 'tmpfs', service])
  }
  await initNode({
    data,
    name: `n${i}`,
    priority: (lab.nodes.length - i) * 10,
    federation: 'faultlab',
    host: host.address,
    serve_bootstrap_port: BOOTSTRAP_PORT,
    ...(secret !== null ? { invite: encodeInvite({ name: 'faultlab', secret, bootstrap }) } : {}),
  })
  const path = nodePaths(data).config
  const config = parse(await readFile(path, 'utf8')) as Record<string, Record<string, unknown>>
  config['federation']!['bootstrap'] = bootstrap
  config['timing'] = { snapshot_interval_ms: options.snapshot_interval_ms }
  config['service'] = {
    dir: join(ROOT, 'examples', 'mail'),
    port: SERVICE_PORT,
    // Only when on: the key does not exist in the schema until output commit lands.
    ...(options.output_commit === 'off' ? {} : { output_commit: Number(options.output_commit) }),
  }
  config['front_door'] = { bind: host.address, ports: { smtp: DOOR_PORT }, hold_ms: 10_000 }
  await writeFileAtomic(path, stringify(config), { mode: 0o600 })
  return { path, secret: String(config['federation']!['secret']) }
}

export async function createLabNodes(
  lab: LabNet,
  dir: string,
  options: LabNodeOptions,
): Promise<{ nodes: LabNode[]; secret: string }> {
  let secret: string | null = null
  const nodes: LabNode[] = []
  for (const i of lab.nodes.keys()) {
    const data = join(dir, `n${i}`)
    const written = await writeNodeDir(lab, data, i, secret, options)
    secret = written.secret
    nodes.push(new LabNode(i, data, written.path, lab.nodes[i]!, lab))
  }
  return { nodes, secret: secret ?? '' }
}

/** Whether a directory is a mount point (the lab's own tmpfs). */
async function mounted(dir: string): Promise<boolean> {
  return run('mountpoint', ['-q', dir]).then(
    () => true,
    () => false,
  )
}

/** Empties a data directory; a mount point in it (the small disk) stays, emptied. */
export async function emptyDir(dir: string, depth = 0): Promise<void> {
  for (const name of await readdir(dir).catch(() => [])) {
    const path = join(dir, name)
    if (depth < 2 && (await mounted(path))) await emptyDir(path, depth + 1)
    else await rm(path, { recursive: true, force: true })
  }
}

/** Unmounts the nodes' small disks (disk-full) so their directories can be removed. */
export async function unmountSmallDisks(nodes: LabNode[]): Promise<void> {
  for (const node of nodes) {
    const service = join(node.data_dir, 'service')
    if (await mounted(service)) await run('umount', [service])
  }
}
