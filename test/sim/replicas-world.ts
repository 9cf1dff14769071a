import {
  type ReplicaConfig,
  ReplicaCore,
  type ReplicaEffect,
  type ReplicaPlantedBug,
  type ReplicaState,
  replicaSet,
} from '../../src/core/replicas.ts'
import { SimNetwork } from './network.ts'
import { Prng } from './prng.ts'
import { Violation } from './world.ts'

const TICK_MS = 50
const CONFIG = { heartbeat_interval_ms: 200, suspect_ms: 1000, failed_cooldown_ms: 3000 }
const CHAOS_MS = 40_000
const QUIET_MS = 10_000

export interface ReplicaScenarioOptions {
  nodes: number
  replicas: number
  planted_bug?: ReplicaPlantedBug
}

export interface ReplicaScenarioResult {
  violation: Violation | null
  /** Services started (a failed replica replaced counts here too). */
  starts: number
  log: string[]
}

interface InFlight {
  at_ms: number
  from: number
  to: number
  msg: ReplicaState
}

/**
 * Type0 in the simulator: ReplicaCore nodes (src/core/replicas.ts) on the simulated network, under
 * crashes, restarts, partitions of every kind, message loss and service exits. Checked after every
 * step: never a merge (`never-a-merge`). After the full heal, with the best node killed for good, and a
 * quiet phase: exactly the `replicas` best live nodes serve (`replica-set`), so a failed replica was
 * replaced from the candidates and a split's surplus stopped.
 */
export function runReplicaScenario(seed: number, options: ReplicaScenarioOptions): ReplicaScenarioResult {
  const rng = new Prng(seed)
  const n = options.nodes
  const net = new SimNetwork(n, rng)
  const ids = Array.from({ length: n }, (_, i) => `n${i}`)
  const priorities = rng.shuffle(Array.from({ length: n }, (_, i) => (i + 1) * 10))
  const configs: ReplicaConfig[] = ids.map((id, i) => ({
    id,
    priority: priorities[i]!,
    replicas: options.replicas,
    ...CONFIG,
    ...(options.planted_bug ? { planted_bug: options.planted_bug } : {}),
  }))
  const cores = configs.map((c) => new ReplicaCore(c, 0))
  const alive = new Array<boolean>(n).fill(true)
  const running = new Array<boolean>(n).fill(false)
  let flight: InFlight[] = []
  let now_ms = 0
  let starts = 0
  const log: string[] = [`seed ${seed} nodes ${n} replicas ${options.replicas}`]

  const apply = (i: number, effects: ReplicaEffect[]) => {
    for (const e of effects) {
      if (e.type === 'run-merge')
        throw new Violation('never-a-merge', now_ms, `${ids[i]} merges with ${e.with}: Type0 never merges`)
      if (e.type === 'start-service') {
        running[i] = true
        starts++
      }
      if (e.type === 'stop-service') running[i] = false
      if (e.type !== 'broadcast') continue
      for (let to = 0; to < n; to++) {
        if (to === i || !net.linked(i, to) || rng.chance(net.lossRate(i, to))) continue
        flight.push({ at_ms: now_ms + net.latency(i, to, rng), from: i, to, msg: e.msg })
      }
    }
  }
  const crash = (i: number) => {
    alive[i] = false
    running[i] = false
    for (let j = 0; j < n; j++)
      if (alive[j] && net.linked(i, j))
        apply(j, cores[j]!.handle({ type: 'peer-down', peer: ids[i]!, now_ms }))
  }
  const restart = (i: number) => {
    if (alive[i]) return
    alive[i] = true
    cores[i] = new ReplicaCore(configs[i]!, now_ms)
  }
  const partitionDowns = () => {
    for (let a = 0; a < n; a++)
      for (let b = 0; b < n; b++)
        if (a !== b && alive[a] && alive[b] && !net.linked(a, b))
          apply(a, cores[a]!.handle({ type: 'peer-down', peer: ids[b]!, now_ms }))
  }

  // The fault plan, drawn up front: [time, action].
  const plan: Array<[number, () => void]> = []
  for (let t = rng.int(2000, 4000); t < CHAOS_MS; t += rng.int(1000, 5000)) {
    const heal_at = Math.min(CHAOS_MS, t + rng.int(1000, 8000))
    const kind = rng.int(0, 99)
    const victim = rng.int(0, n - 1)
    if (kind < 30) {
      plan.push([t, () => crash(victim)], [heal_at, () => restart(victim)])
    } else if (kind < 60) {
      const partition = rng.pick(['halves', 'isolate', 'ring', 'bridge'] as const)
      plan.push(
        [t, () => (log.push(`${t} partition ${net.partition(partition, rng)}`), partitionDowns())],
        [heal_at, () => net.healAll()],
      )
    } else if (kind < 75) {
      plan.push(
        [t, () => net.lossy(rng, rng.pick([0.2, 0.5]), rng.chance(0.5))],
        [heal_at, () => net.healLoss()],
      )
    } else {
      plan.push([
        t,
        () => {
          if (alive[victim] && running[victim]) {
            running[victim] = false
            apply(victim, cores[victim]!.handle({ type: 'service-exited', now_ms }))
          }
        },
      ])
    }
  }
  // Full heal, every node back, then the best node dies for good: its slot must go to a candidate.
  const best = priorities.indexOf(Math.max(...priorities))
  plan.push([
    CHAOS_MS,
    () => {
      net.healAll()
      for (let i = 0; i < n; i++) restart(i)
    },
  ])
  plan.push([CHAOS_MS + 2000, () => crash(best)])
  plan.sort((a, b) => a[0] - b[0])

  let violation: Violation | null = null
  try {
    for (now_ms = TICK_MS; now_ms <= CHAOS_MS + QUIET_MS; now_ms += TICK_MS) {
      while (plan.length > 0 && plan[0]![0] <= now_ms) plan.shift()![1]()
      const due = flight.filter((m) => m.at_ms <= now_ms)
      flight = flight.filter((m) => m.at_ms > now_ms)
      for (const m of due) {
        if (!alive[m.to] || !alive[m.from] || !net.linked(m.from, m.to)) continue
        apply(m.to, cores[m.to]!.handle({ type: 'message', from: ids[m.from]!, msg: m.msg, now_ms }))
      }
      for (let i = 0; i < n; i++) if (alive[i]) apply(i, cores[i]!.handle({ type: 'tick', now_ms }))
    }
    const live = ids.map((id, i) => ({ id, priority: priorities[i]! })).filter((_, i) => alive[i])
    const expected = replicaSet(live, options.replicas).sort()
    const serving = ids.filter((_, i) => alive[i] && running[i]).sort()
    if (serving.join() !== expected.join())
      throw new Violation(
        'replica-set',
        now_ms,
        `after the heal and the best node's death, serving ${serving.join(',') || 'none'}, expected the ${options.replicas} best live: ${expected.join(',')}`,
      )
  } catch (error) {
    violation =
      error instanceof Violation
        ? error
        : new Violation('exception', now_ms, (error as Error).stack ?? String(error))
  }
  return { violation, starts, log }
}
