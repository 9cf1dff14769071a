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
      if (loaded.election.strategy === 'capacity') {
        const { dirname } = await import('node:path')
        const { roomBytes } = await import('../../runtime/load-figure.ts')
        const room = await roomBytes(dirname(path), loaded.node.disk_reserve_bytes)
        const mib = room === null ? 'unknown' : `${Math.floor(room / (1 << 20))} MiB`
        process.stdout.write(
          `capacity election: site ${loaded.node.site ?? 'none'}, room for the state ${mib} ` +
            `(free disk of ${dirname(path)} less disk_reserve_bytes ${loaded.node.disk_reserve_bytes})\n`,
        )
        if (room === 0)
          process.stdout.write(
            'warning: no room: this node is never elected to restore a snapshot (lower disk_reserve_bytes or free disk)\n',
          )
      }
    })
}
