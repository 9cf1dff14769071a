import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type LocalTestnet, startTestnet } from '../../overlay/testnet.ts'
import { Cluster, type NodeProc } from './harness.ts'

const ISOLATION_MS = 8000
/** Snapshots the other side writes while the node is away (each one is 4 blocks of its core). */
const SNAPSHOTS_WHILE_AWAY = 30
const KEEP = 2

/**
 * A node comes back from a partition during which a peer wrote many snapshots and garbage-collected
 * the old ones (so the peer's core has cleared blocks, and the returning node knows none of its
 * index). It must find and collect the peer's newest snapshot: the partition-heal merge depends on it.
 */
describe('collect after a partition heals (three processes, a store each)', () => {
  let testnet: LocalTestnet
  let cluster: Cluster
  let a: NodeProc
  let b: NodeProc
  let c: NodeProc

  beforeAll(async () => {
    testnet = await startTestnet(5)
    cluster = await Cluster.create(testnet.bootstrap)
    a = cluster.spawn('a')
    b = cluster.spawn('b')
    c = cluster.spawn('c')
    await cluster.ready([a, b, c])
    await cluster.meshed([a, b, c])
  })

  afterAll(async () => {
    await cluster?.cleanup()
    await testnet?.destroy()
  })

  it('the returning node collects the newest snapshot of a writer whose history it never saw', async () => {
    const mark = a.events.length
    const isolated = a.request('isolate', { duration_ms: ISOLATION_MS }, ISOLATION_MS + 10_000)
    await a.waitFor((e) => e.event === 'isolation' && e.isolated, 5000, 'isolated', mark)
    // The returning node is a busy server itself: it keeps publishing throughout.
    let busy = true
    const own = (async () => {
      for (let i = 0; busy && i < 200; i++) {
        await a.request('publish', { id: `own-${i}`, size_bytes: 256 * 1024, blob_bytes: 64 * 1024 }, 10_000)
        if (i >= KEEP) await a.request('forget', { ids: [`own-${i - KEEP}`] }, 10_000)
      }
    })()
    const ids: string[] = []
    for (let i = 0; i < SNAPSHOTS_WHILE_AWAY; i++) {
      const id = `away-${i}`
      await b.request('publish', { id, size_bytes: 96 * 1024, blob_bytes: 32 * 1024 }, 10_000)
      ids.push(id)
      if (ids.length > KEEP) await b.request('forget', { ids: ids.slice(0, ids.length - KEEP) }, 10_000)
    }
    await isolated
    await a.waitFor((e) => e.event === 'peer-up' && e.key === b.key, 10_000, 'b back', mark)
    const newest = ids.at(-1)!
    const digest = (await b.request('collect', { writer: b.key, id: newest }, 10_000)).digest
    const got = await a.request('collect', { writer: b.key, id: newest }, 60_000).finally(async () => {
      busy = false
      await own
    })
    expect(got.digest).toBe(digest)
  }, 120_000)

  /**
   * The mirror case: the node that was away is the writer. The others knew its core at an older length,
   * and it garbage-collected blocks between that length and its new one (hypercore then needs
   * keep-tree-nodes.ts to prove the upgrade).
   */
  it('the others collect the newest snapshot the returning writer took while away', async () => {
    const ids: string[] = []
    const publish = async (id: string) => {
      await b.request('publish', { id, size_bytes: 96 * 1024, blob_bytes: 32 * 1024 }, 10_000)
      ids.push(id)
      if (ids.length > KEEP) await b.request('forget', { ids: ids.slice(0, ids.length - KEEP) }, 10_000)
    }
    for (let i = 0; i < 4; i++) {
      const mark = a.events.length
      await publish(`before-${i}`)
      await a.waitFor((e) => e.event === 'snapshot-held' && e.id === `before-${i}`, 10_000, 'held', mark)
      await a.request('forget', { ids: i >= KEEP ? [`before-${i - KEEP}`] : [] }, 10_000)
    }
    const mark = b.events.length
    const isolated = b.request('isolate', { duration_ms: ISOLATION_MS }, ISOLATION_MS + 10_000)
    await b.waitFor((e) => e.event === 'isolation' && e.isolated, 5000, 'isolated', mark)
    for (let i = 0; i < SNAPSHOTS_WHILE_AWAY; i++) await publish(`b-away-${i}`)
    await isolated
    await a.waitFor((e) => e.event === 'peer-up' && e.key === b.key, 10_000, 'b back', mark)
    const newest = ids.at(-1)!
    const digest = (await b.request('collect', { writer: b.key, id: newest }, 10_000)).digest
    const got = await a.request('collect', { writer: b.key, id: newest }, 60_000)
    expect(got.digest).toBe(digest)
  }, 120_000)
})
