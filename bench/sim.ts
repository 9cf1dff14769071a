import { mkdir, writeFile } from 'node:fs/promises'
import { parseArgs } from 'node:util'
import { runScenario } from '../test/sim/scenario.ts'
import { markdownTable, replaceSection } from './lib/results-md.ts'

/**
 * Simulator speed: simulated seconds per wall second for 10 and 100 nodes (each seed simulates a
 * 50 s fault phase and a 40 s quiet phase). There is no peer tool for this figure: it says how many
 * seeds a CI minute buys.
 */
const { values } = parseArgs({ options: { quick: { type: 'boolean', default: false } } })
const cases = [
  { nodes: 10, seeds: values.quick ? 10 : 50 },
  { nodes: 100, seeds: values.quick ? 1 : 3 },
]

const results = []
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

await mkdir(new URL('./results', import.meta.url), { recursive: true })
const json = { machine: { cpus: 2, node: process.version }, quick: values.quick, cases: results }
await writeFile(new URL('./results/sim.json', import.meta.url), `${JSON.stringify(json, null, 2)}\n`)
const table = markdownTable(
  ['nodes', 'seeds', 'simulated s', 'wall s', 'simulated s / wall s', 'elections', 'violations'],
  results.map((r) => [
    r.nodes,
    r.seeds,
    r.simulated_s,
    r.wall_s,
    r.simulated_s_per_wall_s,
    r.elections,
    r.violations,
  ]),
)
await replaceSection(
  new URL('./RESULTS.md', import.meta.url).pathname,
  '## Simulator',
  `\`npm run bench:sim\`${values.quick ? ' -- --quick' : ''}, one core, ${new Date().toISOString().slice(0, 10)}.\n\n${table}\n`,
)
