import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type LocalTestnet, startTestnet } from '../../overlay/testnet.ts'
import { Cluster, type NodeProc } from './harness.ts'

/** The detection bound the failure tests assert (the benchmark measures p99 against 1000 ms). */
const DETECT_WITHIN_MS = 2000
/** After the isolation ends, both sides must be back within this. */
const RECONNECT_WITHIN_MS = 5000
const ISOLATION_MS = 3000
/**
 * Longer than the peer's first dial hold (2 s) plus its probe window (rediscovery 5 s + 5 s), so the
 * peer holds the isolated node again when the isolation ends: it must still let it back in.
 */
const LONG_ISOLATION_MS = 13_000

describe('partition injection: Federation.isolate (two processes)', () => {
  let testnet: LocalTestnet
  let cluster: Cluster
  let a: NodeProc
  let b: NodeProc

  beforeAll(async () => {
    testnet = await startTestnet(5)
    cluster = await Cluster.create(testnet.bootstrap)
    a = cluster.spawn('a')
    b = cluster.spawn('b')
    await cluster.ready([a, b])
    await cluster.meshed([a, b])
  })

  afterAll(async () => {
    await cluster?.cleanup()
    await testnet?.destroy()
  })

  /** Isolate `victim` for `duration_ms`; both sides go down at once and come back after it. */
  async function isolateAndReturn(victim: NodeProc, other: NodeProc, duration_ms: number) {
    const marks = { victim: victim.events.length, other: other.events.length }
    const isolated = victim.request('isolate', { duration_ms }, duration_ms + 10_000)
    const start = await victim.waitFor(
      (e) => e.event === 'isolation' && e.isolated,
      5000,
      'isolated',
      marks.victim,
    )
    const downs = await Promise.all([
      victim.waitFor(
        (e) => e.event === 'peer-down' && e.key === other.key,
        10_000,
        'victim: down',
        marks.victim,
      ),
      other.waitFor(
        (e) => e.event === 'peer-down' && e.key === victim.key,
        10_000,
        'other: down',
        marks.other,
      ),
    ])
    for (const d of downs) expect(d['at_ms'] - start['at_ms']).toBeLessThan(DETECT_WITHIN_MS)
    await isolated
    const end = await victim.waitFor(
      (e) => e.event === 'isolation' && !e.isolated,
      5000,
      'ended',
      marks.victim,
    )
    expect(end['at_ms'] - start['at_ms']).toBeGreaterThanOrEqual(duration_ms - 50)
    const ups = await Promise.all([
      victim.waitFor((e) => e.event === 'peer-up' && e.key === other.key, 10_000, 'victim: up', marks.victim),
      other.waitFor((e) => e.event === 'peer-up' && e.key === victim.key, 10_000, 'other: up', marks.other),
    ])
    // Nobody got back in while the isolation lasted, and both are back soon after it.
    for (const u of ups) {
      expect(u['at_ms']).toBeGreaterThanOrEqual(end['at_ms'])
      expect(u['at_ms'] - end['at_ms']).toBeLessThan(RECONNECT_WITHIN_MS)
    }
  }

  it('both sides see peer-down at once, and peer-up again within seconds after the duration', async () => {
    await isolateAndReturn(a, b, ISOLATION_MS)
  })

  it('after an isolation the data plane replicates again', async () => {
    await isolateAndReturn(b, a, ISOLATION_MS)
    const since = a.events.length
    await b.request('publish', { id: 'after-isolation', size_bytes: 2 * 1024 * 1024 }, 30_000)
    await a.waitFor(
      (e) => e.event === 'snapshot-held' && e.id === 'after-isolation' && e.writer === b.key,
      20_000,
      'held after isolation',
      since,
    )
  })

  it('an isolation that outlasts the peer dial hold: the peer still takes the node back at once', async () => {
    await isolateAndReturn(a, b, LONG_ISOLATION_MS)
  }, 40_000)
})
