import { homedir } from 'node:os'
import { join } from 'node:path'

export { nodePaths } from '../runtime/paths.ts'

/** Where a node keeps its identity, config, snapshots and control socket. */
export function defaultDataDir(): string {
  return process.env.SUSTAIN_DATA ?? join(homedir(), '.sustain')
}
