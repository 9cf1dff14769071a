import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { LocalFederation, type LocalNode } from '../src/demo/local-federation.ts'

/**
 * The front door's SIGKILL scenario (bench:frontdoor's outage runs, bench/frontdoor-timeline.ts): a fresh
 * 3-node federation with front doors, snapshots every 500 ms, and the front door of the last node that
 * does not serve (the one a client knows). The federation is stopped and its directory removed on every
 * exit path, signals included.
 */
export async function withOneDoorFederation<T>(
  prefix: string,
  body: (s: {
    fed: LocalFederation
    server: LocalNode
    entry: LocalNode
    door: { host: string; port: number }
  }) => Promise<T>,
): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), prefix))
  const fed = new LocalFederation({ dir, nodes: 3, snapshot_interval_ms: 500, front_door: {} })
  const release = fed.stopOnSignals()
  try {
    await fed.start()
    const server = await fed.server(60_000)
    const entry = fed.nodes.filter((n) => n !== server).at(-1)!
    return await body({ fed, server, entry, door: entry.front_door! })
  } finally {
    release()
    await fed.stop()
    await rm(dir, { recursive: true, force: true })
  }
}
