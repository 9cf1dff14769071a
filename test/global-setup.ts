import { buildCli } from '../src/cli/build.ts'

/** Tests that run `bin/sustain.js` run what users run: the CLI compiled from the sources under test. */
export default async function setup(): Promise<void> {
  await buildCli()
}
