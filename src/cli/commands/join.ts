import type { Command } from 'commander'
import { defaultDataDir } from '../../config/data-dir.ts'
import { integerOption } from '../options.ts'
import type { JoinOptions } from './join-run.ts'

export function registerJoin(program: Command): void {
  program
    .command('join <token-or-config>')
    .description('run a node of the federation in the foreground (logs to stderr)')
    .option(
      '-d, --data <dir>',
      `node data directory (default: the config's directory, or ${defaultDataDir()})`,
    )
    .option('-n, --name <name>', 'node name')
    .option('-p, --priority <n>', 'election priority (higher wins)', integerOption('priority', 0, 1_000_000))
    .option('-s, --service <dir>', 'service directory (with sustain-service.yaml) this node can run')
    .option('--port <port>', 'loopback port the service listens on here', integerOption('port', 1, 65_535))
    .option('-b, --bootstrap <host:port,...>', 'DHT bootstrap nodes')
    .option('--json', 'log JSON records instead of readable lines')
    .option(
      '--metrics <port>',
      'serve Prometheus metrics on 127.0.0.1:<port>/metrics',
      integerOption('metrics', 1, 65_535),
    )
    .action(async (target: string, options: JoinOptions) => {
      const { runJoin } = await import('./join-run.ts')
      await runJoin(target, options)
    })
}
