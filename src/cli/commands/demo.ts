import type { Command } from 'commander'
import { CliError } from '../../util/cli-error.ts'
import { integerOption } from '../options.ts'

export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description(
      'run a federation of node processes serving mail, kill the server, show the failover and the loss report',
    )
    .option('--nodes <n>', 'number of nodes', integerOption('nodes', 2, 20), 5)
    .option(
      '--headless',
      'plain progress lines instead of the live UI (the default when stdout is not a terminal)',
    )
    .option('--keep', 'keep the data directories (logs, mailboxes) and print where they are')
    .action(async (options: { nodes: number; keep?: boolean; headless?: boolean }) => {
      const { runDemo } = await import('../../demo/demo.ts')
      const { runDemoInUi } = await import('../../tui/demo-ui.ts')
      const { canDrawScreen } = await import('../../tui/run-ui.tsx')
      const demo = { nodes: options.nodes, keep: options.keep ?? false }
      let summary: Awaited<ReturnType<typeof runDemo>>
      if (options.headless || !canDrawScreen()) summary = await runDemo(demo)
      else {
        const shown = await runDemoInUi(demo)
        // The screen is gone; leave the story in the scrollback, then the summary line as --headless does.
        for (const line of shown.narration) process.stdout.write(`${line}\n`)
        summary = shown.summary
      }
      process.stdout.write(`${JSON.stringify(summary)}\n`)
      if (summary.lost_acknowledged > summary.lost_within_rpo) {
        throw new CliError('acknowledged mail was lost outside the recovery point', 3)
      }
    })
}
