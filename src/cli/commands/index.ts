import type { Command } from 'commander'
import { registerImageCommands } from './image.ts'

/** Every subcommand registers itself here; only commands that work are listed. */
export function registerCommands(program: Command): void {
  void program
  registerImageCommands(program)
}
