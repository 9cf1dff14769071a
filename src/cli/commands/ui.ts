import { access } from 'node:fs/promises'
import type { Command } from 'commander'
import { defaultDataDir, nodePaths } from '../../config/data-dir.ts'

export function registerUi(program: Command): void {
  program
    .command('ui')
    .description(
      'live view of the federation through the local node: roles, reachability, snapshots, transfers, timeline',
    )
    .option('-d, --data <dir>', 'node data directory', defaultDataDir())
    .action(async (options: { data: string }) => {
      const socket_path = nodePaths(options.data).socket
      // Not an error: the UI waits for the node and says so; this only tells people where it looks.
      await access(socket_path).catch(() =>
        process.stderr.write(`sustain: no node answers on ${socket_path} yet; waiting for it\n`),
      )
      const { runUi } = await import('../../tui/run-ui.tsx')
      await runUi({ socket_path })
    })
}
