import { hostname } from 'node:os'
import type { Command } from 'commander'
import { defaultDataDir } from '../data-dir.ts'
import type { InitOptions } from '../init-node.ts'
import { integerOption } from '../options.ts'

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
      const { initNode } = await import('../init-node.ts')
      const done = await initNode(options)
      process.stdout.write(
        `node initialised\n  identity   ${done.identity}\n  config     ${done.config}\n  federation ${done.key}\n`,
      )
    })
}
