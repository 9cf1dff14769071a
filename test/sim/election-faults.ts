import type { PlantedBug } from '../../src/core/planted-bugs.ts'
import { compareContenders } from '../../src/core/ranking.ts'
import { Prng } from './prng.ts'
import { Violation, World } from './world.ts'

export interface ElectionFaultsResult {
  seed: number
  /** What went wrong: two servers at once, or not the expected server at the end. */
  problems: string[]
  /**
   * Two servers where the second one's restore was shorter than a refusal's round trip (claim out,
   * refusal back: under REFUSAL_RTT_MS in the simulator): no refusal can stop that claim in time, and
   * the heal merges the two. Counted, not a problem.
   */
  raced: string[]
  violation: Violation | null
  log: string[]
}

/** Longest claim-to-refusal round trip on the simulated network (latency up to 30 ms + jitter 20, twice). */
export const REFUSAL_RTT_MS = 100

type Run = (
  world: World,
  rng: Prng,
  /** Runs to `until_ms`; `expected`: the one node that should serve (a second one is the problem). */
  step: (until_ms: number, expected: number) => void,
  problems: string[],
  raced: () => boolean,
) => void

/** A run on an otherwise quiet network of `nodes` nodes (static strategy), checked every 50 ms. */
function runQuiet(seed: number, nodes: number, planted_bug: PlantedBug | undefined, body: Run, name: string) {
  const rng = new Prng(seed)
  const world = new World(
    { nodes, strategy: 'static', merge_direction: 'priority', output_commit: null, planted_bug },
    rng,
  )
  world.log.push(`${name} seed ${seed} nodes ${nodes}`)
  const problems: string[] = []
  const raced: string[] = []
  let raced_in_body = false
  let t = 0
  // Never two servers at once: every node reaches every other through some path all along.
  const step = (until_ms: number, expected: number) => {
    while (t < until_ms && problems.length === 0) {
      t += 50
      world.run(t)
      const servers = world.nodes.filter((n) => n.alive && n.core.role === 'server' && !n.core.handingOver)
      if (servers.length < 2) continue
      const what = `${t} ms: ${servers.map((n) => `n${n.index} t${n.core.term}`).join(' and ')} serve at once`
      const others = servers.filter((n) => n.index !== expected)
      if (others.some((n) => n.server_since_ms - n.claimed_ms >= REFUSAL_RTT_MS)) problems.push(what)
      else if (!raced.includes(what.replace(/^\d+ ms: /, ''))) {
        raced.push(what.replace(/^\d+ ms: /, ''))
        raced_in_body = true
      }
    }
  }
  const racedSince = () => {
    const r = raced_in_body
    raced_in_body = false
    return r
  }
  let violation: Violation | null = null
  try {
    body(world, rng, step, problems, racedSince)
  } catch (error) {
    violation =
      error instanceof Violation
        ? error
        : new Violation('exception', world.time_ms, (error as Error).stack ?? String(error))
  }
  return { seed, problems, raced, violation, log: world.log }
}

/** Node indices best first by the static strategy (priority, then the smaller id). */
function ranked(world: World): number[] {
  const c = (i: number) => {
    const n = world.nodes[i]!
    return { id: n.id, priority: n.priority, load: n.load, snapshot: null }
  }
  return world.nodes.map((n) => n.index).sort((a, b) => compareContenders('static', c(b), c(a)))
}

/**
 * Formation with a late admission (issue 24, joint start at load 30): nodes start together, but the
 * best node does not reach the second (and 0 to all but one of the others) for 1-8 s; the others
 * reach both. The second, the best it knows, claims; the others refuse it for the best
 * one, which it never heard. One server must come of it, the best node.
 */
export function runLateAdmission(
  seed: number,
  options: { nodes?: number; planted_bug?: PlantedBug } = {},
): ElectionFaultsResult {
  const nodes = options.nodes ?? 5
  return runQuiet(
    seed,
    nodes,
    options.planted_bug,
    (world, rng, step, problems, raced) => {
      const order = ranked(world)
      const top = order[0]!
      // The second always; up to all but one of the others too (then the refusers are a minority of
      // the second's reachable peers: only the formation rule stops its claim).
      const cut = [order[1]!, ...rng.shuffle(order.slice(2)).slice(0, rng.int(0, nodes - 3))]
      const lag_ms = rng.int(1000, 8000)
      for (const c of cut) {
        world.linkChanged(top, c, false)
        world.at(lag_ms, () => world.linkChanged(top, c, true))
      }
      step(lag_ms + 12_000, top)
      const servers = world.nodes.filter((n) => n.alive && n.core.role === 'server')
      const merged = raced()
      if (problems.length === 0 && (servers.length !== 1 || (servers[0]!.index !== top && !merged)))
        problems.push(`after formation: servers ${servers.map((n) => `n${n.index}`).join(',')}, best n${top}`)
    },
    'late admission',
  )
}

/**
 * False suspicion (issue 24, a server busy ~600 ms after its service started): one candidate stops
 * hearing the live server (the link between the two cut, or one way only) while every other node
 * still hears both. It suspects the server and claims; the server's followers refuse. It must not
 * serve beside the server. `rounds` such faults in a row on one federation.
 */
export function runFalseSuspicion(
  seed: number,
  options: { nodes?: number; rounds?: number; planted_bug?: PlantedBug } = {},
): ElectionFaultsResult {
  const nodes = options.nodes ?? 5
  const rounds = options.rounds ?? 6
  return runQuiet(
    seed,
    nodes,
    options.planted_bug,
    (world, rng, step, problems, raced) => {
      let t = 10_000
      step(t, ranked(world)[0]!)
      for (let r = 0; r < rounds && problems.length === 0; r++) {
        const server = world.nodes.findIndex((n) => n.alive && n.core.role === 'server')
        if (server < 0) {
          problems.push(`round ${r + 1}: no server before it`)
          return
        }
        // Mostly the node that would claim (the best of the others), sometimes any other.
        const others = ranked(world).filter((i) => i !== server)
        const suspecter = rng.chance(0.7) ? others[0]! : rng.pick(others)
        const one_way = rng.chance(0.5)
        const lag_ms = rng.int(1000, 6000)
        // A fault, not a link not found yet: the liveness bound counts from it.
        const fault = (on: boolean) => {
          if (one_way) world.oneWayChanged(server, suspecter, on)
          else {
            world.networkChanged(`${on ? 'cut' : 'heal'} ${server}-${suspecter}`)
            world.linkChanged(server, suspecter, !on)
          }
        }
        fault(true)
        world.at(t + lag_ms, () => fault(false))
        t += lag_ms + rng.int(3000, 6000)
        step(t, server)
        const servers = world.nodes.filter((n) => n.alive && n.core.role === 'server')
        // After a race the heal's merge picks the server (by priority), not this fault.
        const merged = raced()
        if (problems.length === 0 && (servers.length !== 1 || (servers[0]!.index !== server && !merged)))
          problems.push(
            `round ${r + 1} (n${suspecter} cut from n${server}${one_way ? ' one way' : ''}): servers ${servers.map((n) => `n${n.index}`).join(',')}`,
          )
      }
    },
    'false suspicion',
  )
}
