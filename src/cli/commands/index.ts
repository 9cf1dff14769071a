import type { Command } from 'commander'
import { registerConfig } from './config.ts'
import { registerDemo } from './demo.ts'
import { registerImageCommands } from './image.ts'
import { registerInit } from './init.ts'
import { registerInvite } from './invite.ts'
import { registerJoin } from './join.ts'
import { registerLogs } from './logs.ts'
import { registerNodeControl } from './node-control.ts'
import { registerService } from './service.ts'
import { registerUi } from './ui.ts'

/** Every subcommand registers itself here; only commands that work are listed. */
export function registerCommands(program: Command): void {
  registerInit(program)
  registerInvite(program)
  registerJoin(program)
  registerNodeControl(program)
  registerDemo(program)
  registerConfig(program)
  registerImageCommands(program)
  registerUi(program)
  registerService(program)
  registerLogs(program)
}
