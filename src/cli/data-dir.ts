import { homedir } from 'node:os'
import { join, resolve } from 'node:path'

/** Where a node keeps its identity, config, snapshots and control socket. */
export function defaultDataDir(): string {
  return process.env.SUSTAIN_DATA ?? join(homedir(), '.sustain')
}

export function nodePaths(data_dir: string) {
  const dir = resolve(data_dir)
  return { dir, identity: join(dir, 'identity.json'), config: join(dir, 'sustain.yaml') }
}
