import { readdir, readFile } from 'node:fs/promises'
import { describe, expect, it } from 'vitest'
import { DEFAULT_CORE_CONFIG } from '../../src/core/config.ts'
import { LocalFederation, type LogRecord } from '../../src/demo/local-federation.ts'
import { nodePaths } from '../../src/runtime/paths.ts'
import { localFederations } from './fixtures.ts'

const startFederation = localFederations()

const event =
  (name: string, after_ms = 0) =>
  (r: LogRecord) =>
    r.event === name && Number(r.time) >= after_ms

// Long enough for detection, the fence and a restore on the majority side even on a loaded machine.
const ISOLATION_MS = 15_000

describe('merge_policy refuse-to-split end to end (real node processes, loopback testnet)', () => {
  it('the isolated server stops its service; the other two elect one server after the fence; one server after the heal', async () => {
    const federation = await startFederation({
      nodes: 3,
      base_port: 2720,
      snapshot_interval_ms: 500,
      merge_policy: 'refuse-to-split',
    })
    const server = await federation.server(60_000)
    await server.waitFor((r) => r.event === 'snapshot_taken', 10_000, 'a snapshot')
    const isolated_ms = Date.now()
    await server.isolate(ISOLATION_MS)
    const lost = await server.waitFor(event('quorum_lost', isolated_ms), 10_000, 'the isolated server stops')
    expect(lost.members).toBe(3)
    // What it had not replicated yet is copied aside, never dropped; the members it counts outlive a restart.
    const kept = await server.waitFor(event('state_kept_aside', isolated_ms), 10_000, 'its state set aside')
    expect((await readdir(String(kept.path))).length).toBeGreaterThan(0)
    const persisted = JSON.parse(await readFile(nodePaths(server.data_dir).persisted, 'utf8'))
    expect(persisted.members).toHaveLength(2)
    const others = federation.nodes.filter((n) => n !== server)
    const { node: successor, record: elected } = await LocalFederation.first(
      others,
      event('elected', isolated_ms),
      ISOLATION_MS,
      'an election on the majority side',
    )
    // Safety by order, not by speed: the old server stopped before anyone claimed, and the claim waited
    // for the support gap that began no earlier than the isolation.
    expect(Number(lost.time)).toBeLessThanOrEqual(Number(elected.time))
    expect(Number(elected.time) - isolated_ms).toBeGreaterThanOrEqual(DEFAULT_CORE_CONFIG.fence_ms)
    await successor.waitFor(event('service_answering', isolated_ms), 30_000, 'the successor answers')
    // While isolated the old server never claimed (it is a minority of one).
    expect(server.records.some(event('elected', isolated_ms))).toBe(false)
    // After the heal it follows the successor: exactly one server.
    await server.waitFor(
      (r) => r.event === 'role_changed' && r.to === 'candidate' && Number(r.time) >= isolated_ms,
      ISOLATION_MS + 30_000,
      'the old server follows the new one',
    )
    const statuses = await Promise.all(federation.nodes.map((n) => n.status()))
    expect(statuses.filter((s) => s?.node.role === 'server').map((s) => s?.node.name)).toEqual([
      successor.name,
    ])
    expect(server.records.some(event('elected', isolated_ms))).toBe(false)
  })
})
