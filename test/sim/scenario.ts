import type { MergePolicy } from '../../src/core/config.ts'
import type { PlantedBug } from '../../src/core/planted-bugs.ts'
import type { Strategy } from '../../src/core/types.ts'
import type { PartitionKind } from './network.ts'
import { Prng } from './prng.ts'
import { BOUNDS, Violation, World } from './world.ts'

export interface ScenarioOptions {
  nodes: number
  strategy?: Strategy
  planted_bug?: PlantedBug
  /** Default `helper` (no draw from the seed, so existing seeds replay unchanged). */
  merge_policy?: MergePolicy
  /** Output commit k, or null for off; default: drawn from the seed (off, 1 or 2). */
  output_commit?: number | null
  /** The capture model's read against its mark (WorldOptions.capture_read; default 'at-mark'). */
  capture_read?: 'at-mark' | 'after-mark' | 'before-mark'
  /** Simulated length of the fault phase and of the quiet phase after the full heal. */
  chaos_ms?: number
  quiet_ms?: number
}

export interface ScenarioResult {
  seed: number
  violation: Violation | null
  log: string[]
  simulated_ms: number
  elections: number
  merges: number
  restores: number
  /** Lanes that ended while both ends lived on, and peer-downs acted on from connection events. */
  lane_blips: number
  gone_verdicts: number
  releases: number
}

const STRATEGIES: Strategy[] = ['static', 'freshest', 'capacity']
const PARTITIONS: PartitionKind[] = ['halves', 'isolate', 'ring', 'bridge']

/**
 * One seeded run: a fault phase (crashes, restarts, partitions of every kind, loss, service crashes,
 * crash loops, leaves, corrupt copies, load changes), then a full heal with every node back, then a
 * quiet phase. The same seed replays the same run exactly.
 */
export function runScenario(seed: number, options: ScenarioOptions): ScenarioResult {
  const rng = new Prng(seed)
  const strategy = options.strategy ?? rng.pick(STRATEGIES)
  const merge_direction = rng.chance(0.5) ? 'priority' : 'newest-term'
  const output_commit =
    options.output_commit !== undefined ? options.output_commit : rng.pick([null, 1, 2] as const)
  const world = new World(
    {
      nodes: options.nodes,
      strategy,
      merge_direction,
      merge_policy: options.merge_policy,
      planted_bug: options.planted_bug,
      output_commit,
      capacity_seed: seed,
      ...(options.capture_read ? { capture_read: options.capture_read } : {}),
    },
    rng,
  )
  world.log.push(
    `seed ${seed} nodes ${options.nodes} strategy ${strategy} merge ${merge_direction} policy ${options.merge_policy ?? 'helper'} output_commit ${output_commit ?? 'off'}`,
  )
  const chaos_ms = options.chaos_ms ?? 50_000
  const quiet_ms = options.quiet_ms ?? 40_000
  const server = () => world.nodes.findIndex((n) => n.alive && n.core.role === 'server')
  const anyNode = () => rng.int(0, options.nodes - 1)

  let t = rng.int(3000, 6000)
  while (t < chaos_ms) {
    const at = t
    const heal_at = Math.min(chaos_ms, at + rng.int(1000, 12_000))
    const kind = rng.int(0, 99)
    if (kind < 22) {
      world.at(at, () => {
        const s = server()
        const victim = s >= 0 && rng.chance(0.8) ? s : anyNode()
        // A terminated node resigns first (its resign sometimes lost in flight); a crashed process's
        // lanes end and redials are refused; a machine that goes leaves silence only.
        const how = rng.int(0, 99)
        if (how < 25) world.terminate(victim, rng.chance(0.3))
        else world.crash(victim, how < 65 ? 'process' : 'machine')
        world.at(heal_at, () => world.restart(victim))
      })
    } else if (kind < 44) {
      const partition = rng.pick(PARTITIONS)
      world.at(at, () => world.networkChanged(`partition ${world.net.partition(partition, rng)}`))
      world.at(heal_at, () => {
        world.net.healAll()
        world.networkChanged('heal')
      })
    } else if (kind < 54) {
      const one_way = rng.chance(0.5)
      const rate = rng.pick([0.05, 0.2, 0.5])
      world.at(at, () => world.networkChanged(world.net.lossy(rng, rate, one_way)))
      world.at(heal_at, () => {
        world.net.healLoss()
        world.networkChanged('loss healed')
      })
    } else if (kind < 70) {
      world.at(at, () => {
        const s = server()
        if (s >= 0) world.serviceCrash(s, rng.chance(0.3) ? 10 : rng.int(0, 1))
      })
    } else if (kind < 78) {
      world.at(at, () => {
        const victim = rng.chance(0.6) && server() >= 0 ? server() : anyNode()
        world.leave(victim)
        world.at(heal_at, () => world.restart(victim))
      })
    } else if (kind < 86) {
      world.at(at, () => world.corruptCopy(anyNode()))
    } else if (kind < 92) {
      world.at(at, () => {
        const victim = anyNode()
        world.crash(victim)
        world.at(at + rng.int(100, 800), () => world.restart(victim))
      })
    } else {
      world.at(at, () => world.setLoad(anyNode(), rng.int(0, 100)))
    }
    t += rng.int(1000, 8000)
  }
  // Lane blips all along, quiet phase included: a lane that ends while both ends live on must change
  // nothing (the liveness bound is not restarted by them).
  for (let b = rng.int(200, 3000); b < chaos_ms + quiet_ms; b += rng.int(200, 3000)) {
    world.at(b, () => {
      const s = server()
      const a = s >= 0 && rng.chance(0.7) ? s : anyNode()
      const other = anyNode()
      if (other !== a) world.laneBlip(a, other)
    })
  }
  world.at(chaos_ms, () => {
    world.net.healAll()
    world.networkChanged('full heal')
    for (let i = 0; i < options.nodes; i++) world.restart(i)
  })

  let violation: Violation | null = null
  try {
    world.run(chaos_ms + quiet_ms)
    // Faults the quiet phase itself draws (a hand-over successor's restore that stalls) restart its
    // clock: the final check waits until the federation was quiet for the liveness bound, at most 60 s more.
    const limit_ms = chaos_ms + quiet_ms + 60_000
    let until_ms = chaos_ms + quiet_ms
    while (until_ms < limit_ms && world.last_disturbance_at_ms + BOUNDS.liveness_ms > until_ms) {
      until_ms = Math.min(limit_ms, world.last_disturbance_at_ms + BOUNDS.liveness_ms)
      world.run(until_ms)
    }
    world.checkHealed()
  } catch (error) {
    if (!(error instanceof Violation)) {
      violation = new Violation('exception', world.time_ms, (error as Error).stack ?? String(error))
    } else violation = error
  }
  return {
    seed,
    violation,
    log: world.log,
    simulated_ms: world.time_ms,
    elections: world.elections,
    merges: world.merges,
    restores: world.restores,
    lane_blips: world.lane_blips,
    gone_verdicts: world.gone_verdicts,
    releases: world.releases,
  }
}
