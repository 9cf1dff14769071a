import { once } from 'node:events'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import SecretStream from '@hyperswarm/secret-stream'
import Hypercore from 'hypercore'
import SessionState from 'hypercore/lib/session-state.js'

/**
 * Live instances of the internals the patches reach into: a real writer core and a sparse reader of it,
 * replicating over an in-memory secret stream. Checks read fields off these, so a field hypercore renamed
 * fails the check at start instead of a patch reading `undefined` later.
 */
export interface Internals {
  /** hypercore's internal replicator Peer (the reader's view of the writer); its class is what peer patches replace. */
  peer: object
  /** The reader session that `peer` belongs to. */
  core: Hypercore
  /** hypercore's SessionState class (not exported by name: reached by path). */
  SessionState: { prototype: object }
  /** A connected secret stream (the writer's side of the replication). */
  secretStream: object
  /** secret-stream's class. */
  SecretStream: { prototype: object }
}

/** Start a probe pair; `close` ends both cores and removes their storage. */
export async function probeInternals(): Promise<{ internals: Internals; close: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'sustain-patch-probe-'))
  const writer = new Hypercore(join(dir, 'writer'))
  let reader: Hypercore | null = null
  const streams: { destroy(): void }[] = []
  const close = async () => {
    for (const s of streams) s.destroy()
    await Promise.all([writer.close(), reader?.close()])
    await rm(dir, { recursive: true, force: true })
  }
  try {
    await writer.ready()
    await writer.append(Buffer.from('probe'))
    reader = new Hypercore(join(dir, 'reader'), writer.key)
    await reader.ready()
    const peerAdded = once(reader, 'peer-add')
    const a = writer.replicate(true) as unknown as NodeJS.ReadWriteStream & {
      noiseStream: object
      destroy(): void
    }
    const b = reader.replicate(false) as unknown as NodeJS.ReadWriteStream & { destroy(): void }
    streams.push(a, b)
    a.pipe(b).pipe(a)
    await peerAdded
    const replicator = (reader as unknown as { core: { replicator: { peers: object[] } } }).core.replicator
    const peer = replicator.peers[0]
    if (peer === undefined) throw new Error('patch probe: the reader has no replicator peer')
    const internals: Internals = {
      peer,
      core: reader,
      SessionState: SessionState as unknown as { prototype: object },
      secretStream: a.noiseStream,
      SecretStream: SecretStream as unknown as { prototype: object },
    }
    return { internals, close }
  } catch (error) {
    await close()
    throw error
  }
}
