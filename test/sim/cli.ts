import { parseArgs } from 'node:util'
import type { MergePolicy } from '../../src/core/config.ts'
import { PLANTED_BUGS, type PlantedBug } from '../../src/core/planted-bugs.ts'
import type { Strategy } from '../../src/core/types.ts'
import { runScenario } from './scenario.ts'

const USAGE = `usage: npm run sim -- [--seeds N] [--nodes K] [--seed S] [--strategy static|freshest|capacity]
                       [--first F] [--plant BUG] [--policy helper|refuse-to-split] [--verbose]
  --seeds N   run N seeded scenarios (seeds F .. F+N-1, default 1000 from 1)
  --seed S    replay one seed exactly and print its event log
  --plant BUG plant a known bug (${PLANTED_BUGS.join(', ')})
  --policy P  merge policy (default helper); refuse-to-split adds the one-serving-node invariant`

const { values } = parseArgs({
  options: {
    seeds: { type: 'string', default: '1000' },
    nodes: { type: 'string', default: '7' },
    seed: { type: 'string' },
    first: { type: 'string', default: '1' },
    strategy: { type: 'string' },
    plant: { type: 'string' },
    policy: { type: 'string', default: 'helper' },
    verbose: { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
})

function positiveInt(name: string, text: string | undefined, min: number, max: number): number {
  const n = Number(text)
  if (!Number.isInteger(n) || n < min || n > max) {
    process.stderr.write(
      `sim: --${name} must be an integer from ${min} to ${max}, got ${JSON.stringify(text)}\n`,
    )
    process.exit(2)
  }
  return n
}

if (values.help) {
  process.stdout.write(`${USAGE}\n`)
  process.exit(0)
}
const nodes = positiveInt('nodes', values.nodes, 3, 100)
const strategy = values.strategy as Strategy | undefined
if (strategy !== undefined && !['static', 'freshest', 'capacity'].includes(strategy)) {
  process.stderr.write(`sim: --strategy must be static, freshest or capacity, got ${strategy}\n`)
  process.exit(2)
}
const planted_bug = values.plant as PlantedBug | undefined
if (planted_bug !== undefined && !PLANTED_BUGS.includes(planted_bug)) {
  process.stderr.write(`sim: --plant must be one of ${PLANTED_BUGS.join(', ')}, got ${planted_bug}\n`)
  process.exit(2)
}

const merge_policy = values.policy as MergePolicy
if (!['helper', 'keep-higher', 'refuse-to-split'].includes(merge_policy)) {
  process.stderr.write(`sim: --policy must be helper, keep-higher or refuse-to-split, got ${merge_policy}\n`)
  process.exit(2)
}

if (values.seed !== undefined) {
  const seed = positiveInt('seed', values.seed, 0, 2 ** 32 - 1)
  const result = runScenario(seed, { nodes, strategy, planted_bug, merge_policy })
  for (const line of result.log) process.stdout.write(`${line}\n`)
  if (result.violation) process.stdout.write(`VIOLATION ${result.violation.message}\n`)
  process.stdout.write(`seeds: 1, violations: ${result.violation ? 1 : 0}\n`)
  process.exit(result.violation ? 1 : 0)
}

const seeds = positiveInt('seeds', values.seeds, 1, 10_000_000)
const first = positiveInt('first', values.first, 0, 2 ** 32 - 1)
let violations = 0
let simulated_ms = 0
let elections = 0
let merges = 0
let blips = 0
let gone = 0
let releases = 0
const started = performance.now()
for (let seed = first; seed < first + seeds; seed++) {
  const result = runScenario(seed, { nodes, strategy, planted_bug, merge_policy })
  simulated_ms += result.simulated_ms
  elections += result.elections
  merges += result.merges
  blips += result.lane_blips
  gone += result.gone_verdicts
  releases += result.releases
  if (result.violation) {
    violations += 1
    process.stdout.write(`seed ${seed}: ${result.violation.invariant}: ${result.violation.message}\n`)
    if (values.verbose) for (const line of result.log.slice(-40)) process.stdout.write(`    ${line}\n`)
  }
}
const wall_s = (performance.now() - started) / 1000
process.stdout.write(
  `simulated ${(simulated_ms / 1000).toFixed(0)} s in ${wall_s.toFixed(1)} s wall; ${elections} elections, ${merges} merges; ${blips} lane blips, ${gone} peer-downs from connection events; ${releases} output releases checked\n`,
)
process.stdout.write(`seeds: ${seeds}, violations: ${violations}\n`)
process.exit(violations > 0 ? 1 : 0)
