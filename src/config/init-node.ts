import { mkdir, stat } from 'node:fs/promises'
import { stringify } from 'yaml'
import { writeFileAtomic } from '../../lib/atomic-write.ts'
import { createSecret } from '../../overlay/keys.ts'
import { CliError } from '../util/cli-error.ts'
import { nodePaths } from './data-dir.ts'
import { writeNewIdentity } from './identity.ts'
import { decodeInvite, federationKey } from './invite.ts'
import { parseConfig } from './load.ts'

export interface InitOptions {
  data: string
  name: string
  priority: number
  federation: string
  invite?: string
  /** federation.host: the address this node's DHT nodes and lane bind (its LAN address). */
  host?: string
  /**
   * Also serve a DHT bootstrap node on host:this port (0: not). Default: DEFAULT_BOOTSTRAP_PORT for the
   * first node of a new federation, 0 for a node joining by invite.
   */
  serve_bootstrap_port?: number
  /** Use the public DHT (internet) instead of the federation's own bootstrap nodes. */
  public_dht?: boolean
}

/** hyperdht's own default for a bootstrap node (`hyperdht --bootstrap`). */
export const DEFAULT_BOOTSTRAP_PORT = 49737

async function exists(path: string): Promise<boolean> {
  return (await stat(path).catch(() => null)) !== null
}

export async function initNode(
  options: InitOptions,
): Promise<{ config: string; identity: string; key: string; bootstrap: string[] }> {
  const paths = nodePaths(options.data)
  for (const path of [paths.identity, paths.config]) {
    if (await exists(path))
      throw new CliError(`${path} already exists: this directory holds a node; nothing was changed`)
  }
  const invite = options.invite !== undefined ? decodeInvite(options.invite) : null
  const host = options.host ?? '127.0.0.1'
  const serve_bootstrap_port =
    options.serve_bootstrap_port ?? (invite === null && !options.public_dht ? DEFAULT_BOOTSTRAP_PORT : 0)
  // The invite's bootstrap nodes, and this node once it serves one: its own invites then carry both.
  const bootstrap = [...(invite?.bootstrap ?? [])]
  const self = `${host}:${serve_bootstrap_port}`
  if (serve_bootstrap_port !== 0 && !bootstrap.includes(self)) bootstrap.push(self)
  const config = parseConfig(
    {
      version: 1,
      node: { name: options.name, priority: options.priority },
      federation: {
        name: invite?.name ?? options.federation,
        secret: invite?.secret ?? createSecret().toString('hex'),
        bootstrap,
        host,
        serve_bootstrap_port,
        public_dht: options.public_dht ?? false,
      },
    },
    'the new config',
  )
  // 0711: others may traverse (a service such as Postfix runs as its own user inside) but not list;
  // the identity and the config (the federation secret) are 0600 themselves.
  await mkdir(paths.dir, { recursive: true, mode: 0o711 })
  await writeNewIdentity(paths.identity)
  const header = '# Sustain node config. The federation secret admits nodes: keep this file private.\n'
  await writeFileAtomic(paths.config, header + stringify(config), { mode: 0o600 })
  return {
    config: paths.config,
    identity: paths.identity,
    key: federationKey(config.federation.secret),
    bootstrap: config.federation.bootstrap,
  }
}
