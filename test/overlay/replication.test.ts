import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { type LocalTestnet, startTestnet } from '../../overlay/testnet.ts'
import { Cluster, type NodeProc } from './harness.ts'

const MiB = 1024 * 1024

describe('replicated snapshot store', () => {
  let testnet: LocalTestnet
  let cluster: Cluster | null = null

  beforeAll(async () => {
    testnet = await startTestnet(5)
  })
  afterEach(async () => {
    await cluster?.cleanup()
    cluster = null
  })
  afterAll(async () => {
    await testnet?.destroy()
  })

  it('a 64 MiB snapshot replicates to 4 candidates byte-identical', async () => {
    cluster = await Cluster.create(testnet.bootstrap)
    const server = cluster.spawn('server', { priority: 100 })
    const candidates = [1, 2, 3, 4].map((i) => cluster!.spawn(`c${i}`))
    const all = [server, ...candidates]
    await cluster.ready(all)
    await cluster.meshed(all)
    const published = await server.request('publish', { id: 'snap-64', size_bytes: 64 * MiB }, 60_000)
    await Promise.all(
      candidates.map((c) =>
        c.waitFor(
          (e) => e.event === 'snapshot-held' && e.id === 'snap-64' && e.writer === server.key,
          90_000,
          'held',
        ),
      ),
    )
    // Everything is local now: the server can go away and every candidate still reads it whole.
    server.child.kill('SIGKILL')
    await server.exited
    for (const c of candidates) {
      const got = await c.request('collect', { writer: server.key, id: 'snap-64' }, 60_000)
      expect(got.bytes_total).toBe(64 * MiB)
      expect(got.digest).toBe(published.digest)
      expect(got.progress_events).toBeGreaterThan(1)
    }
  })

  /**
   * Failed about 3 runs in 4 before overlay/upgrade-sync.ts: the last holder of a blob was advertised to
   * the restorer at a stale length and hypercore would not ask it (10 of 10 clean with the patch).
   */
  it('8 nodes, r = 2: a holder is killed (and the writer too) and the newest snapshot is still collected whole', async () => {
    cluster = await Cluster.create(testnet.bootstrap)
    const nodes: NodeProc[] = [0, 1, 2, 3, 4, 5, 6, 7].map((i) =>
      cluster!.spawn(`r${i}`, { replication_factor: 2, block_timeout_ms: 2000 }),
    )
    await cluster.ready(nodes)
    await cluster.meshed(nodes)
    const [writer, ...others] = nodes as [NodeProc, ...NodeProc[]]
    await writer.request('publish', { id: 'old', size_bytes: 4 * MiB }, 60_000)
    const published = await writer.request('publish', { id: 'newest', size_bytes: 24 * MiB }, 60_000)
    await Promise.all(
      others.map((n) => n.waitFor((e) => e.event === 'snapshot-held' && e.id === 'newest', 60_000, 'held')),
    )
    // Placement: nobody but the writer holds everything, and every blob has at least r = 2 copies.
    const counts = await Promise.all(others.map((n) => n.request('local-blocks', { writer: writer.key })))
    const blob_count = 4 + 24
    for (const c of counts) expect(c.held).toBeLessThan(c.length)
    const held_blobs = counts.reduce((sum, c) => sum + c.held - 4, 0) // minus 2 manifests + 2 indexes each
    expect(held_blobs).toBeGreaterThanOrEqual(2 * blob_count)
    writer.child.kill('SIGKILL')
    const victim = others[0]!
    victim.child.kill('SIGKILL')
    await Promise.all([writer.exited, victim.exited])
    const restorer = others[others.length - 1]!
    const got = await restorer.request('collect', { writer: writer.key, id: 'newest' }, 90_000)
    expect(got.digest).toBe(published.digest)
    expect(got.bytes_total).toBe(24 * MiB)
  })

  /**
   * Before writers announced their publishes, a reader connected during one read the tail of every
   * append to see if it was the index: the last blob of each 4 MiB append, held or not by its placement.
   */
  it('r = 1, candidates connected during the publish: together they fetch every blob once, no more', async () => {
    cluster = await Cluster.create(testnet.bootstrap)
    const nodes: NodeProc[] = [0, 1, 2].map((i) => cluster!.spawn(`p${i}`, { replication_factor: 1 }))
    await cluster.ready(nodes)
    await cluster.meshed(nodes)
    const [writer, ...others] = nodes as [NodeProc, ...NodeProc[]]
    const published = await writer.request('publish', { id: 'share', size_bytes: 32 * MiB }, 60_000)
    expect(published.blobs).toBe(32)
    await Promise.all(
      others.map((n) => n.waitFor((e) => e.event === 'snapshot-held' && e.id === 'share', 60_000, 'held')),
    )
    const counts = await Promise.all(others.map((n) => n.request('local-blocks', { writer: writer.key })))
    // Each holds its share of the 32 blobs plus the manifest and the index it read.
    for (const c of counts) expect(c.held).toBeLessThan(c.length)
    expect(counts.reduce((sum, c) => sum + c.held - 2, 0)).toBe(32)
  })

  /**
   * A merge archive used to be indexed like a snapshot: every candidate downloaded it and the runtime
   * tried to read it as a snapshot ("published snapshot wrapper is malformed" on every node).
   */
  it('a merge archive is collected by id but never placed or announced as a snapshot', async () => {
    cluster = await Cluster.create(testnet.bootstrap)
    const nodes: NodeProc[] = [0, 1, 2].map((i) => cluster!.spawn(`m${i}`))
    await cluster.ready(nodes)
    await cluster.meshed(nodes)
    const [writer, winner, other] = nodes as [NodeProc, NodeProc, NodeProc]
    const archive = await writer.request('publish', { id: 'merge:x', size_bytes: 2 * MiB, kind: 'archive' })
    // A snapshot published after it: once the others hold it, they have read the index past the archive.
    await writer.request('publish', { id: 'after', size_bytes: MiB })
    await Promise.all(
      [winner, other].map((n) =>
        n.waitFor((e) => e.event === 'snapshot-held' && e.id === 'after', 30_000, 'held'),
      ),
    )
    const got = await winner.request('collect', { writer: writer.key, id: 'merge:x' }, 30_000)
    expect(got.digest).toBe(archive.digest)
    for (const n of [winner, other]) {
      expect(n.events.filter((e) => e.id === 'merge:x' && e.event !== 'collected')).toEqual([])
    }
    // The bystander fetched the newer snapshot only: its 1 blob, manifest and index, and the archive's index.
    const held = await other.request('local-blocks', { writer: writer.key })
    expect(held.held).toBe(4)
  })
})
