import type { Command } from 'commander'
import { defaultDataDir } from '../../config/data-dir.ts'

export function registerService(program: Command): void {
  const service = program.command('service').description('run the node as a systemd service')
  service
    .command('print')
    .description('print the systemd unit that runs this node with the process settings it wants')
    .option('-d, --data <dir>', 'node data directory', defaultDataDir())
    .action(async (options: { data: string }) => {
      const { unitFor } = await import('./service-run.ts')
      process.stdout.write((await unitFor(options.data)).text)
    })
  service
    .command('install')
    .description('write that unit to /etc/systemd/system/sustain-NAME.service (then: systemctl enable --now)')
    .option('-d, --data <dir>', 'node data directory', defaultDataDir())
    .option('--unit-dir <dir>', 'directory to write the unit into', '/etc/systemd/system')
    .action(async (options: { data: string; unitDir: string }) => {
      const { installUnit } = await import('./service-run.ts')
      await installUnit(options.data, options.unitDir)
    })
}
