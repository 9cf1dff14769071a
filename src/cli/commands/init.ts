import { hostname } from 'node:os'
import type { Command } from 'commander'
import { defaultDataDir } from '../../config/data-dir.ts'
import type { InitOptions } from '../../config/init-node.ts'
import { integerOption } from '../options.ts'

/** Commander's names for the options (camelCase). */
type InitFlags = Omit<InitOptions, 'serve_bootstrap_port' | 'public_dht'> & {
  serveBootstrap?: number
  publicDht?: boolean
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
    .option('--host <address>', "this machine's address the node binds (federation.host)", '127.0.0.1')
    .option(
      '--serve-bootstrap <port>',
      'also serve a DHT bootstrap node on host:port, 0: not (default: 49737 for a new federation, 0 with --invite)',
      integerOption('serve-bootstrap', 0, 65_535),
    )
    .option('--public-dht', 'find the other nodes through the public DHT (internet) instead')
    .action(async (cli: InitFlags) => {
      const { serveBootstrap, publicDht, ...rest } = cli
      const options: InitOptions = {
        ...rest,
        ...(serveBootstrap === undefined ? {} : { serve_bootstrap_port: serveBootstrap }),
        ...(publicDht ? { public_dht: true } : {}),
      }
      const { initNode } = await import('../../config/init-node.ts')
      const done = await initNode(options)
      process.stdout.write(
        `node initialised\n  identity   ${done.identity}\n  config     ${done.config}\n  federation ${done.key}\n` +
          `  bootstrap  ${done.bootstrap.length > 0 ? done.bootstrap.join(' ') : options.public_dht ? 'the public DHT' : 'none'}\n`,
      )
    })
}
