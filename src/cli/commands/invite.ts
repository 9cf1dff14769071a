import type { Command } from 'commander'
import { defaultDataDir, nodePaths } from '../../config/data-dir.ts'

export function registerInvite(program: Command): void {
  program
    .command('invite')
    .description('print a token that lets another machine join this federation (it carries the secret)')
    .option('-d, --data <dir>', 'node data directory', defaultDataDir())
    .action(async (options: { data: string }) => {
      const { loadConfig } = await import('../../config/load.ts')
      const { encodeInvite } = await import('../../config/invite.ts')
      const config = await loadConfig(nodePaths(options.data).config)
      const token = encodeInvite({
        name: config.federation.name,
        secret: config.federation.secret,
        bootstrap: config.federation.bootstrap,
      })
      process.stdout.write(`${token}\n`)
      process.stderr.write('anyone with this token can join the federation: send it privately\n')
    })
}
