import { join, resolve } from 'node:path'

/** Everything a node keeps lives under its data directory; these are the names. */
export function nodePaths(data_dir: string) {
  const dir = resolve(data_dir)
  return {
    dir,
    identity: join(dir, 'identity.json'),
    config: join(dir, 'sustain.yaml'),
    /** Unix socket (0600) the CLI and the UI talk to. */
    socket: join(dir, 'control.sock'),
    snapshots: join(dir, 'snapshots'),
    overlay: join(dir, 'overlay'),
    index: join(dir, 'snapshot-index.bin'),
    persisted: join(dir, 'state.json'),
    /** The failover timeline, one JSON line per stage (`sustain logs`; runtime/timeline-file.ts). */
    timeline: join(dir, 'timeline.jsonl'),
    /** A heal loser's changes since the split, when no helper merged them. */
    kept: join(dir, 'kept'),
    /** The service's state directory while this node runs it. */
    service_state: join(dir, 'service', 'state'),
  }
}
