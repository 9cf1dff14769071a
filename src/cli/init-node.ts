import { mkdir, stat } from 'node:fs/promises'
import { stringify } from 'yaml'
import { createSecret } from '../../overlay/keys.ts'
import { writeNewIdentity } from '../config/identity.ts'
import { decodeInvite, federationKey } from '../config/invite.ts'
import { parseConfig } from '../config/load.ts'
import { writeFileAtomic } from '../util/atomic-write.ts'
import { CliError } from './cli-error.ts'
import { nodePaths } from './data-dir.ts'

export interface InitOptions {
  data: string
  name: string
  priority: number
  federation: string
  invite?: string
}

async function exists(path: string): Promise<boolean> {
  return (await stat(path).catch(() => null)) !== null
}

export async function initNode(
  options: InitOptions,
): Promise<{ config: string; identity: string; key: string }> {
  const paths = nodePaths(options.data)
  for (const path of [paths.identity, paths.config]) {
    if (await exists(path))
      throw new CliError(`${path} already exists: this directory holds a node; nothing was changed`)
  }
  const invite = options.invite !== undefined ? decodeInvite(options.invite) : null
  const config = parseConfig(
    {
      version: 1,
      node: { name: options.name, priority: options.priority },
      federation: {
        name: invite?.name ?? options.federation,
        secret: invite?.secret ?? createSecret().toString('hex'),
        bootstrap: invite?.bootstrap ?? [],
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
  return { config: paths.config, identity: paths.identity, key: federationKey(config.federation.secret) }
}
