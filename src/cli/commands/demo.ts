import type { Command } from 'commander'
import { runDemo } from '../../demo/demo.ts'
import { CliError } from '../cli-error.ts'
import { integerOption } from '../options.ts'

export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description(
      'run a federation of node processes serving mail, kill the server, show the failover and the loss report',
    )
    .option('--nodes <n>', 'number of nodes', integerOption('nodes', 2, 20), 5)
    .option('--headless', 'plain progress lines (the live UI arrives with `sustain ui`)')
    .option('--keep', 'keep the data directories (logs, mailboxes) and print where they are')
    .action(async (options: { nodes: number; keep?: boolean }) => {
      const summary = await runDemo({ nodes: options.nodes, keep: options.keep ?? false })
      process.stdout.write(`${JSON.stringify(summary)}\n`)
      if (summary.lost_acknowledged > summary.lost_within_rpo) {
        throw new CliError('acknowledged mail was lost outside the recovery point', 3)
      }
    })
}
