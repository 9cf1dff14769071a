import type { Command } from 'commander'
import { defaultDataDir } from '../../config/data-dir.ts'
import { integerOption } from '../options.ts'

export function registerLogs(program: Command): void {
  program
    .command('logs')
    .description(
      'show the failover timeline this node recorded: roles, faults, detection, election, restore, merges',
    )
    .option('-d, --data <dir>', 'node data directory', defaultDataDir())
    .option('-n, --lines <n>', 'the last n records', integerOption('lines', 1, 1_000_000), 50)
    .option('--json', 'print the records as JSON lines')
    .action(async (options: { data: string; lines: number; json?: boolean }) => {
      const { printTimeline } = await import('./logs-run.ts')
      await printTimeline(options.data, options.lines, options.json === true)
    })
}
