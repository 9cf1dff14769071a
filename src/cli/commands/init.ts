import { mkdir, stat } from 'node:fs/promises'
import { hostname } from 'node:os'
import type { Command } from 'commander'
import { stringify } from 'yaml'
import { createSecret } from '../../../overlay/keys.ts'
import { writeNewIdentity } from '../../config/identity.ts'
import { decodeInvite, federationKey } from '../../config/invite.ts'
import { parseConfig } from '../../config/load.ts'
import { writeFileAtomic } from '../../util/atomic-write.ts'
import { CliError } from '../cli-error.ts'
import { defaultDataDir, nodePaths } from '../data-dir.ts'
import { integerOption } from '../options.ts'

interface InitOptions {
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

export function registerInit(program: Command): void {
  program
    .command('init')
    .description(
      'create a node identity (ed25519, mode 0600) and a config file; a new federation unless --invite',
    )
    .option('-d, --data <dir>', 'node data directory', defaultDataDir())
    .option('-n, --name <name>', 'node name', hostname().split('.')[0] || 'node')
    .option(
      '-p, --priority <n>',
      'election priority (higher wins)',
      integerOption('priority', 0, 1_000_000),
      100,
    )
    .option('-f, --federation <name>', 'name of the new federation', 'sustain')
    .option('-i, --invite <token>', 'join the federation of this invite token instead of creating one')
    .action(async (options: InitOptions) => {
      const done = await initNode(options)
      process.stdout.write(
        `node initialised\n  identity   ${done.identity}\n  config     ${done.config}\n  federation ${done.key}\n`,
      )
    })
}
