import { type Command, InvalidArgumentError } from 'commander'
import { CliError } from '../../util/cli-error.ts'
import { integerOption } from '../options.ts'

interface DemoCliOptions {
  nodes: number
  keep?: boolean
  headless?: boolean
  outputCommit: number | 'off'
}

/** `off`, or a whole number of candidates from 1 to the most nodes a demo runs. */
function outputCommitOption(value: string): number | 'off' {
  if (value === 'off') return 'off'
  const k = Number(value)
  if (!Number.isInteger(k) || k < 1 || k > 19)
    throw new InvalidArgumentError(`--output-commit must be off or an integer from 1 to 19, got "${value}"`)
  return k
}

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
    .option(
      '--output-commit <k|off>',
      'zero-loss mode: answers wait for a snapshot on k candidates (off: loss bounded by the snapshot interval)',
      outputCommitOption,
      1,
    )
    .action(async (options: DemoCliOptions) => {
      // The new server must still have k candidates after the kill, or its clients wait forever.
      if (options.outputCommit !== 'off' && options.outputCommit > options.nodes - 2)
        throw new CliError(
          `--output-commit ${options.outputCommit} needs at least ${options.outputCommit + 2} nodes (the server, ` +
            `the one killed, and k candidates for the new server); got --nodes ${options.nodes}`,
          2,
        )
      const { runDemo } = await import('../../demo/demo.ts')
      const { runDemoInUi } = await import('../../tui/demo-ui.ts')
      const { canDrawScreen } = await import('../../tui/run-ui.tsx')
      const demo = { nodes: options.nodes, keep: options.keep ?? false, output_commit: options.outputCommit }
      let summary: Awaited<ReturnType<typeof runDemo>>
      if (options.headless || !canDrawScreen()) summary = await runDemo(demo)
      else {
        const shown = await runDemoInUi(demo)
        // The screen is gone; leave the story in the scrollback, then the summary line as --headless does.
        for (const line of shown.narration) process.stdout.write(`${line}\n`)
        summary = shown.summary
      }
      process.stdout.write(`${JSON.stringify(summary)}\n`)
      if (summary.lost_within_rpo === null && summary.lost_acknowledged > 0)
        throw new CliError('acknowledged mail was lost with output commit on', 3)
      if (summary.lost_acknowledged > (summary.lost_within_rpo ?? 0)) {
        throw new CliError('acknowledged mail was lost outside the recovery point', 3)
      }
    })
}
