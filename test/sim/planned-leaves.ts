import type { PlantedBug } from '../../src/core/planted-bugs.ts'
import { Prng } from './prng.ts'
import { Violation, World } from './world.ts'

export interface PlannedLeavesResult {
  seed: number
  /** What went wrong in a leave: not exactly one claim (the successor's), or no server after it. */
  problems: string[]
  violation: Violation | null
  log: string[]
}

/**
 * `leave.slow` in the simulator: on a quiet network, the server leaves, its successor serves, the
 * leaver restarts and rejoins; `leaves` times in a row. A planned leave must make exactly one claim.
 */
export function runPlannedLeaves(
  seed: number,
  options: { nodes?: number; leaves?: number; planted_bug?: PlantedBug } = {},
): PlannedLeavesResult {
  const { nodes = 4, leaves = 20, planted_bug } = options
  const rng = new Prng(seed)
  const output_commit = rng.pick([null, 1] as const)
  const world = new World(
    { nodes, strategy: 'static', merge_direction: 'priority', output_commit, planted_bug },
    rng,
  )
  world.log.push(`planned leaves seed ${seed} nodes ${nodes} output_commit ${output_commit ?? 'off'}`)
  const problems: string[] = []
  const server = () => world.nodes.findIndex((n) => n.alive && n.core.role === 'server')
  let t = 10_000
  let violation: Violation | null = null
  try {
    world.run(t)
    for (let i = 0; i < leaves; i++) {
      const leaver = server()
      if (leaver < 0) {
        problems.push(`leave ${i + 1}: no server before it`)
        break
      }
      const mark = world.log.length
      world.leave(leaver)
      // Under load the leaver's event loop blocks while it stops its service and takes its final snapshot.
      if (rng.chance(0.5)) world.busy(leaver, rng.int(500, 3000))
      // Until the leaver exited and another node serves, at most 60 s.
      const limit = t + 60_000
      while (t < limit && (world.nodes[leaver]!.alive || server() < 0)) {
        t += 50
        world.run(t)
      }
      const claims = world.log
        .slice(mark)
        .filter((l) => / elected /.test(l))
        .map((l) => l.split(' ')[1])
      // Faults the world draws by itself (a restore that stalls) excuse a second claim: the leaver passes over.
      const excused = world.log.slice(mark).some((l) => / fault (?!leave|exit)/.test(l))
      const next = server()
      if (next < 0 || world.nodes[leaver]!.alive)
        problems.push(`leave ${i + 1} of n${leaver}: not done in 60 s`)
      else if (!excused && (claims.length !== 1 || claims[0] !== `n${next}`))
        problems.push(`leave ${i + 1} of n${leaver}: claims ${claims.join('+')}, server n${next}`)
      else if (
        !excused &&
        !world.log
          .slice(mark)
          .some((l) => l.includes(`n${leaver} handover_finished`) && !l.includes('"successor":null'))
      )
        problems.push(`leave ${i + 1} of n${leaver}: ended without handing over`)
      t += rng.int(200, 1500)
      world.run(t)
      // A rejoining node finds its peers one by one (hyperswarm lookups, redials): in half the rejoins
      // one peer reaches it only seconds later (leave.slow: 5 s), while the next leave may already name it.
      if (rng.chance(0.5)) {
        const others = world.nodes.filter((n) => n.index !== leaver && n.alive).map((n) => n.index)
        const late = rng.pick(others)
        const lag_ms = rng.int(1000, 8000)
        world.linkChanged(leaver, late, false)
        world.at(t + lag_ms, () => world.linkChanged(leaver, late, true))
      }
      world.restart(leaver)
      t += rng.int(2000, 6000)
      world.run(t)
    }
  } catch (error) {
    violation =
      error instanceof Violation
        ? error
        : new Violation('exception', world.time_ms, (error as Error).stack ?? String(error))
  }
  return { seed, problems, violation, log: world.log }
}
