import type { Command } from 'commander'
import { defaultDataDir, nodePaths } from '../../config/data-dir.ts'

export function registerConfig(program: Command): void {
  const config = program.command('config').description('inspect the node config')
  config
    .command('check [file]')
    .description('validate a config file; names every wrong field, its value and what was expected')
    .option('-d, --data <dir>', 'node data directory (when no file is given)', defaultDataDir())
    .action(async (file: string | undefined, options: { data: string }) => {
      const { loadConfig } = await import('../../config/load.ts')
      const { federationKey } = await import('../../config/invite.ts')
      const { loadFrontDoorPorts } = await import('../../frontdoor/load-ports.ts')
      const path = file ?? nodePaths(options.data).config
      const loaded = await loadConfig(path)
      const bootstrap = loaded.federation.bootstrap
      const ports = await loadFrontDoorPorts(loaded)
      process.stdout.write(
        `${path}: valid (node ${loaded.node.name}, priority ${loaded.node.priority}, ` +
          `federation ${loaded.federation.name} ${federationKey(loaded.federation.secret).slice(0, 16)}…, ` +
          `bootstrap ${bootstrap.length > 0 ? bootstrap.join(' ') : 'none'})` +
          (ports.length > 0
            ? `; front door on ${loaded.front_door!.bind}: ${ports.map((p) => `${p.name} ${p.listen_port} -> ${p.service_port}`).join(', ')}`
            : '') +
          '\n',
      )
    })
}
