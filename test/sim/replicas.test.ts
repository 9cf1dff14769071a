import { describe, expect, it } from 'vitest'
import { REPLICA_PLANTED_BUGS, ReplicaCore, replicaSet } from '../../src/core/replicas.ts'
import { runReplicaScenario } from './replicas-world.ts'

// Type0 (no state): `replicas` nodes serve at once, never a merge, a failed replica replaced from the
// candidates (src/core/replicas.ts). The simulator checks never-a-merge after every step and the exact
// replica set after the heal (test/sim/replicas-world.ts).
describe('simulator, type0 replicas', () => {
  it('the replica set is the best `replicas` by priority, then the smaller id', () => {
    const nodes = [
      { id: 'c', priority: 10 },
      { id: 'b', priority: 30 },
      { id: 'a', priority: 10 },
      { id: 'd', priority: 20 },
    ]
    expect(replicaSet(nodes, 2)).toEqual(['b', 'd'])
    expect(replicaSet(nodes, 3)).toEqual(['b', 'd', 'a'])
    expect(replicaSet(nodes, 9)).toHaveLength(4)
  })

  it('a lone node serves at once; a better node that appears takes the slot when replicas is 1', () => {
    const config = { replicas: 1, heartbeat_interval_ms: 200, suspect_ms: 1000, failed_cooldown_ms: 3000 }
    const low = new ReplicaCore({ id: 'low', priority: 1, ...config }, 0)
    expect(low.handle({ type: 'tick', now_ms: 0 }).map((e) => e.type)).toContain('start-service')
    const msg = { type: 'replica-state', priority: 9, eligible: true, serving: true } as const
    const effects = low.handle({ type: 'message', from: 'high', msg, now_ms: 10 })
    expect(effects).toContainEqual({ type: 'stop-service', reason: 'not a replica' })
    expect(effects.some((e) => e.type === 'run-merge')).toBe(false)
    // The better one goes silent: the slot comes back.
    expect(low.handle({ type: 'tick', now_ms: 1200 }).map((e) => e.type)).toContain('start-service')
  })

  for (const [nodes, replicas] of [
    [5, 2],
    [7, 3],
  ] as const) {
    it(`${nodes} nodes, ${replicas} replicas, seeds 1-60: never a merge; after the heal exactly the best live serve`, () => {
      const failures: string[] = []
      let starts = 0
      for (let seed = 1; seed <= 60; seed++) {
        const result = runReplicaScenario(seed, { nodes, replicas })
        starts += result.starts
        if (result.violation) failures.push(`seed ${seed}: ${result.violation.message}`)
      }
      expect(failures).toEqual([])
      expect(starts).toBeGreaterThan(60 * replicas) // not vacuous: replicas were replaced along the way
    })
  }

  for (const bug of REPLICA_PLANTED_BUGS) {
    it(`catches the planted bug "${bug}"`, () => {
      let caught: string | null = null
      for (let seed = 1; seed <= 100 && caught === null; seed++) {
        const result = runReplicaScenario(seed, { nodes: 5, replicas: 2, planted_bug: bug })
        if (result.violation) caught = result.violation.invariant
      }
      expect(caught).toBe(bug === 'type0-merges-on-heal' ? 'never-a-merge' : 'replica-set')
    })
  }
})
