/**
 * `npm run bench [-- --quick]`: every suite in one go, one after another (never two at once: they
 * would measure each other), then bench/RESULTS.md regenerated from the results files. A suite that
 * fails is reported and the others still run; the exit code says whether all passed.
 * `--only a,b` runs the named suites.
 */

import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { runInGroup } from './lib/run-child.ts'
import { renderResults } from './render/results-md.ts'

const ROOT = resolve(import.meta.dirname, '..')

/** In the order they run: cheap and self-contained first, the federation-sized ones after. */
const SUITES = [
  'snapshot',
  'merge',
  'pause',
  'sim',
  'cli',
  'overlay',
  'failover',
  'fence',
  'frontdoor',
  'zero-loss',
  'types',
  'qemu',
  'qemu-zero-loss',
  'faults',
] as const

const { values } = parseArgs({
  options: { quick: { type: 'boolean', default: false }, only: { type: 'string' } },
})
const wanted = values.only ? values.only.split(',') : [...SUITES]
const unknown = wanted.filter((s) => !(SUITES as readonly string[]).includes(s))
if (unknown.length > 0)
  throw new Error(`unknown suite(s) ${unknown.join(', ')}; suites: ${SUITES.join(', ')}`)

const scripts = JSON.parse(readFileSync(resolve(ROOT, 'package.json'), 'utf8')).scripts as Record<
  string,
  string
>
const outcome: Record<string, string> = {}
for (const suite of wanted) {
  const script = suite === 'faults' ? 'faults' : `bench:${suite}`
  if (!scripts[script]) {
    outcome[suite] = 'not in this checkout'
    continue
  }
  process.stderr.write(`\n=== ${script}${values.quick ? ' --quick' : ''}\n`)
  const code = await runInGroup(
    'npm',
    ['run', '-s', script, ...(values.quick ? ['--', '--quick'] : [])],
    ROOT,
  )
  outcome[suite] = code === 0 ? 'ok' : `failed (exit ${code})`
}
const path = await renderResults()
process.stderr.write(
  `\n${Object.entries(outcome)
    .map(([s, o]) => `${s}: ${o}`)
    .join('\n')}\nrendered ${path}\n`,
)
process.exitCode = Object.values(outcome).some((o) => o.startsWith('failed')) ? 1 : 0
