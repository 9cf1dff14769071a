import { readFileSync } from 'node:fs'
import { Command, CommanderError } from 'commander'
import { ConfigError } from '../config/config-error.ts'
import { CliError } from '../util/cli-error.ts'
import { registerCommands } from './commands/index.ts'

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
  version: string
}

const program = new Command('sustain')
  .description('Keep a network service alive across failures of a federation of ordinary PCs')
  .version(pkg.version, '-V, --version')
  .showHelpAfterError()
  .exitOverride()

registerCommands(program)

try {
  await program.parseAsync(process.argv)
} catch (error) {
  if (error instanceof CommanderError) process.exit(error.exitCode)
  if (error instanceof CliError || error instanceof ConfigError) {
    process.stderr.write(`sustain: ${error.message}\n`)
    process.exit(error instanceof CliError ? error.exitCode : 1)
  }
  throw error
}
