/**
 * `npm run bench:compare -- REV SUITE [-- suite args]`: one suite on commit REV and on this checkout,
 * back to back on the same machine, so a change's effect is a paired measurement. REV is checked out
 * into .tmp/compare/<rev> (a git worktree with its own `npm ci`), its run kept in that tree's results;
 * this checkout's run is kept in bench/results as usual. Prints both runs' headlines.
 * For more pairs, repeat: each call adds one run on each side, REV first on odd calls is up to you
 * (pass --this-first to measure this checkout first).
 */
import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { allRuns, readResultsIn } from './lib/results-file.ts'
import { runInGroup } from './lib/run-child.ts'
import { SECTIONS } from './render/sections.ts'

const ROOT = resolve(import.meta.dirname, '..')
const argv = process.argv.slice(2)
const thisFirst = argv.includes('--this-first')
const [rev, suite, ...rest] = argv.filter((a) => a !== '--this-first')
if (!rev || !suite) {
  process.stderr.write('usage: npm run bench:compare -- REV SUITE [--this-first] [-- suite args]\n')
  process.exit(2)
}
const section = SECTIONS.find((s) => s.file === `${suite}.json`)
if (!section)
  throw new Error(`no suite ${suite}; suites: ${SECTIONS.map((s) => s.file.replace('.json', '')).join(', ')}`)
const commit = execFileSync('git', ['-C', ROOT, 'rev-parse', '--short', rev], { encoding: 'utf8' }).trim()
const tree = join(ROOT, '.tmp', 'compare', commit)
if (!existsSync(tree)) {
  execFileSync('git', ['-C', ROOT, 'worktree', 'add', '--detach', tree, commit], { stdio: 'inherit' })
  execFileSync('npm', ['ci', '--no-audit', '--no-fund'], { cwd: tree, stdio: 'inherit' })
}
const args = [
  'run',
  '-s',
  `bench:${suite}`,
  ...(rest.length > 0 ? ['--', ...rest.filter((a) => a !== '--')] : []),
]
const order = thisFirst ? [ROOT, tree] : [tree, ROOT]
for (const dir of order) {
  const code = await runInGroup('npm', args, dir)
  if (code !== 0) throw new Error(`bench:${suite} failed in ${dir} (exit ${code})`)
}
for (const [label, dir] of [
  [`${commit} (REV)`, tree],
  ['this checkout', ROOT],
] as const) {
  const newest = allRuns(await readResultsIn(join(dir, 'bench', 'results'), section.file)).at(-1)
  process.stdout.write(
    `${label}: ${newest && section.summary ? section.summary(newest) : 'no run recorded'}\n`,
  )
}
