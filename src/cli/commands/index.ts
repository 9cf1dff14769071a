import type { Command } from 'commander'
import { registerConfig } from './config.ts'
import { registerImageCommands } from './image.ts'
import { registerInit } from './init.ts'
import { registerInvite } from './invite.ts'

/** Every subcommand registers itself here; only commands that work are listed. */
export function registerCommands(program: Command): void {
  registerInit(program)
  registerInvite(program)
  registerConfig(program)
  registerImageCommands(program)
}
