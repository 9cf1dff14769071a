import { parseArgs } from 'node:util'
import { runScenario } from '../test/sim/scenario.ts'
import { keepRun } from './lib/results-file.ts'
import { benchCommand, type RunMeta, startRun } from './lib/run-meta.ts'
import { renderResults } from './render/results-md.ts'
import type { SimCase, SimRun } from './render/sim.ts'

/**
 * Simulator speed: simulated seconds per wall second for 10 and 100 nodes (each seed simulates a
 * 50 s fault phase and a 40 s quiet phase). There is no peer tool for this figure: it says how many
 * seeds a CI minute buys. One pass per case (rounds = 1). `npm run bench:sim [-- --quick]`: keeps the
 * run in bench/results/sim.json and regenerates bench/RESULTS.md.
 */
const { values } = parseArgs({ options: { quick: { type: 'boolean', default: false } } })
const cases = [
  { nodes: 10, seeds: values.quick ? 10 : 50 },
  { nodes: 100, seeds: values.quick ? 1 : 3 },
]

const finish = startRun(benchCommand('bench:sim'), 1)
const results: SimCase[] = []
for (const c of cases) {
  let simulated_ms = 0
  let violations = 0
  let elections = 0
  const started = performance.now()
  for (let seed = 1; seed <= c.seeds; seed++) {
    const r = runScenario(seed, { nodes: c.nodes })
    simulated_ms += r.simulated_ms
    elections += r.elections
    if (r.violation) violations += 1
  }
  const wall_s = (performance.now() - started) / 1000
  const result = {
    nodes: c.nodes,
    seeds: c.seeds,
    simulated_s: simulated_ms / 1000,
    wall_s: Number(wall_s.toFixed(2)),
    simulated_s_per_wall_s: Number((simulated_ms / 1000 / wall_s).toFixed(1)),
    elections,
    violations,
  }
  results.push(result)
  process.stdout.write(`${JSON.stringify(result)}\n`)
}

const run: SimRun & RunMeta = { quick: values.quick ?? false, cases: results, ...finish() }
await keepRun('sim.json', run)
await renderResults()
