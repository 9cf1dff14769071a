import { describe, expect, it } from 'vitest'
import type { PeerInfo, SnapshotRef } from '../../src/core/types.ts'
import { recoveryLine } from '../../src/runtime/format-status.ts'
import { catchUpTarget, recoveryPoint } from '../../src/runtime/recovery-point.ts'
import { SnapshotRetry } from '../../src/runtime/snapshot-retry.ts'
import { initialState, reduce } from '../../src/tui/model.ts'
import { KEYS, status } from '../tui/recorded-stream.ts'

const INTERVAL_MS = 5000
const NOW = 1_000_000

function ref(writer: string, seq: number, time_ms: number): SnapshotRef {
  return { id: `${writer}:1:${seq}`, writer, term: 1, seq, time_ms, size_bytes: 1, lineage: [] }
}

function peer(id: string, role: PeerInfo['role'], snapshot: SnapshotRef | null): PeerInfo {
  return {
    id,
    reachable: true,
    role,
    term: 1,
    priority: 1,
    load: 0,
    room_bytes: null,
    site: null,
    server: null,
    snapshot,
    head: null,
    health: 'ok',
    last_heard_ms: NOW,
    vote: null,
    vote_heard_ms: 0,
    members: 0,
    ineligible_until_ms: 0,
    progress: 0,
    progress_ms: 0,
  }
}

const server = KEYS.n0
const base = { now_ms: NOW, interval_ms: INTERVAL_MS, server, serving_since_ms: null }

describe('recovery point', () => {
  it('is the newest snapshot a candidate holds, not the server', () => {
    const point = recoveryPoint({
      ...base,
      self: { id: KEYS.n1, role: 'candidate', held: ref(server, 7, NOW - 4000) },
      peers: [
        peer(server, 'server', ref(server, 9, NOW - 100)),
        peer(KEYS.n2, 'candidate', ref(server, 7, NOW - 4000)),
      ],
    })
    expect(point).toMatchObject({
      id: `${server}:1:7`,
      age_ms: 4000,
      holders: 2,
      limit_ms: 15_000,
      stuck: false,
    })
  })

  it('is stuck past 3 intervals, even though the server itself has newer snapshots', () => {
    const point = recoveryPoint({
      ...base,
      self: { id: server, role: 'server', held: ref(server, 9, NOW - 100) },
      serving_since_ms: NOW - 60_000,
      peers: [peer(KEYS.n1, 'candidate', ref(server, 1, NOW - 15_001))],
    })
    expect(point).toMatchObject({ id: `${server}:1:1`, holders: 1, stuck: true })
  })

  it('is absent and stuck when a server served 3 intervals and no candidate holds anything', () => {
    const young = recoveryPoint({
      ...base,
      self: { id: server, role: 'server', held: null },
      serving_since_ms: NOW - 10_000,
      peers: [peer(KEYS.n1, 'candidate', null)],
    })
    expect(young).toMatchObject({ id: null, stuck: false })
    expect(
      recoveryPoint({
        ...base,
        self: { id: server, role: 'server', held: null },
        serving_since_ms: NOW - 16_000,
        peers: [peer(KEYS.n1, 'candidate', null)],
      }).stuck,
    ).toBe(true)
  })

  it('on a one-node federation is the server own newest (0 holders), stuck when it stops moving', () => {
    const point = recoveryPoint({
      ...base,
      self: { id: server, role: 'server', held: ref(server, 1, NOW - 50_000) },
      peers: [],
    })
    expect(point).toMatchObject({ id: `${server}:1:1`, holders: 0, age_ms: 50_000, stuck: true })
  })

  it('is never stuck without a server (nothing is being snapshot)', () => {
    const point = recoveryPoint({
      ...base,
      server: null,
      self: { id: KEYS.n1, role: 'candidate', held: ref(server, 1, NOW - 90_000) },
      peers: [],
    })
    expect(point.stuck).toBe(false)
  })
})

describe('a candidate that fell behind fetches the server newest snapshot by id', () => {
  const server_newest = ref(server, 30, NOW - 100)
  const input = (held: SnapshotRef | null, role: PeerInfo['role'] = 'candidate') => ({
    ...base,
    self: { id: KEYS.n1, role, held },
    peers: [peer(server, 'server', server_newest), peer(KEYS.n2, 'candidate', server_newest)],
  })

  it('when its newest is older than 3 intervals, or absent', () => {
    expect(catchUpTarget(input(ref(server, 7, NOW - 16_000)))?.id).toBe(server_newest.id)
    expect(catchUpTarget(input(null))?.id).toBe(server_newest.id)
  })

  it('not while background replication keeps up (younger than 3 intervals), nor when it is level', () => {
    expect(catchUpTarget(input(ref(server, 29, NOW - 14_000)))).toBeNull()
    expect(catchUpTarget(input(server_newest))).toBeNull()
  })

  it('not on the server, nor when the server is unreachable or not serving', () => {
    expect(catchUpTarget(input(null, 'server'))).toBeNull()
    const gone = input(null)
    gone.peers[0] = { ...gone.peers[0]!, reachable: false }
    expect(catchUpTarget(gone)).toBeNull()
    const leaving = input(null)
    leaving.peers[0] = { ...leaving.peers[0]!, role: 'leaving' }
    expect(catchUpTarget(leaving)).toBeNull()
  })
})

describe('status and UI say it plainly', () => {
  it('status names the age, the limit and the failure', () => {
    const s = status(
      {
        role: 'server',
        term: 1,
        server: KEYS.n1,
        snapshot: null,
        recovery: { id: `${server}:1:1`, age_ms: 47_000, holders: 2, stuck: true },
      },
      [],
    )
    s.snapshot_failures = { consecutive: 9, last_reason: 'xdelta3 encode failed: ENOMEM', last_ms: NOW }
    expect(recoveryLine(s)).toBe(
      'RECOVERY POINT STUCK: newest snapshot on 2 candidate(s) is 47 s old (limit 15 s): a failover now loses that much; 9 snapshot(s) failed in a row: xdelta3 encode failed: ENOMEM',
    )
  })

  it('the UI timeline marks the moment it sticks and when it moves again', () => {
    const at = (stuck: boolean) =>
      status(
        {
          role: 'candidate',
          term: 1,
          server,
          snapshot: null,
          recovery: { id: `${server}:1:1`, age_ms: stuck ? 20_000 : 1000, stuck },
        },
        [],
      )
    let ui = initialState(0)
    for (const [i, s] of [at(false), at(true), at(true), at(false)].entries())
      ui = reduce(ui, { type: 'status', status: s }, i * 1000)
    const lines = ui.timeline.map((e) => [e.text, e.tone])
    expect(lines).toContainEqual(['recovery point stuck: newest replicated snapshot is 20 s old', 'fault'])
    expect(lines).toContainEqual(['recovery point moves again', 'good'])
    expect(lines.filter(([text]) => String(text).startsWith('recovery point stuck'))).toHaveLength(1)
  })
})

describe('a failing snapshot is not retried blindly', () => {
  it('first retry encodes a fresh base, then attempts back off 2, 4, 8, 8 intervals; success resets', () => {
    const retry = new SnapshotRetry(INTERVAL_MS)
    expect(retry.next(0, false)).toEqual({ take: true, fresh_base: false })
    retry.failed('ENOMEM', 0)
    expect(retry.next(INTERVAL_MS, false)).toEqual({ take: true, fresh_base: true })
    let t = INTERVAL_MS
    const waits: number[] = []
    for (let failures = 2; failures <= 5; failures++) {
      retry.failed('disk full', t)
      let next = t + INTERVAL_MS
      while (!retry.next(next, false).take) next += INTERVAL_MS
      expect(retry.next(next, false)).toEqual({ take: true, fresh_base: true })
      waits.push((next - t) / INTERVAL_MS)
      t = next
    }
    expect(waits).toEqual([2, 4, 8, 8])
    expect(retry.failures).toMatchObject({ consecutive: 5, last_reason: 'disk full' })
    retry.failed('disk full', t)
    // A hand-over's final snapshot is never skipped.
    expect(retry.next(t + 1, true)).toEqual({ take: true, fresh_base: true })
    retry.succeeded()
    expect(retry.next(t + 2, false)).toEqual({ take: true, fresh_base: false })
  })
})
