/**
 * Runs a command as on a machine with only Node and npm: every program of the system suite's table
 * (requirements.ts) and the other Debian extras of this machine kind (compilers, python3, the benchmark
 * peers) are hidden behind an empty, non-executable file, in a private mount namespace of the command
 * (root; nothing outside it changes). What `npm ci && npm test` must pass under:
 *   tsx test/system/without-packages.ts -- bash -c 'npm ci && npm test'
 */
import { spawn } from 'node:child_process'
import { realpathSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { delimiter, join } from 'node:path'
import { onPath, REQUIREMENTS } from './requirements.ts'

/** Beyond the table: what node-gyp builds with, and the benchmarks' peers. */
const EXTRAS = ['gcc', 'g++', 'c++', 'make', 'python3', 'keepalived', 'xdelta3', 'zstd', 'faketime', 'tmux']

/** Every executable file `program` names, in each PATH directory (a pyenv shim hides no /usr/bin/python3). */
function located(program: string): string[] {
  const candidates = program.includes('/')
    ? [program]
    : (process.env['PATH'] ?? '').split(delimiter).flatMap((dir) => (dir === '' ? [] : [join(dir, program)]))
  return candidates.filter((path) => onPath(path)).map((path) => realpathSync(path))
}

const command = process.argv.slice(2)
if (command[0] === '--') command.shift()
if (command.length === 0) throw new Error('usage: tsx test/system/without-packages.ts -- COMMAND [ARGS...]')
if (process.getuid?.() !== 0) throw new Error('hiding programs takes a mount namespace: run as root')

const programs = [
  ...Object.values(REQUIREMENTS)
    .filter((r) => r.packages.length > 0 && !r.what.includes('*'))
    .map((r) => r.what),
  ...EXTRAS,
].filter((p) => !['ip', 'nsenter', 'unshare'].includes(p)) // util-linux (essential) and iproute2 come with every Debian
const hidden = [...new Set(programs.flatMap(located))]
const empty = join(tmpdir(), `sustain-hidden-${process.pid}`)
writeFileSync(empty, '', { mode: 0o644 })
console.error(`without-packages: hiding ${hidden.join(' ')}`)
const mounts = hidden.map((p) => `mount --bind ${JSON.stringify(empty)} ${JSON.stringify(p)}`).join(' && ')
const child = spawn(
  'unshare',
  ['-m', '--propagation', 'private', 'bash', '-c', `${mounts} && exec "$@"`, 'bash', ...command],
  { stdio: 'inherit' },
)
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => child.kill(signal))
child.on('exit', (code, signal) => {
  rmSync(empty, { force: true })
  process.exit(code ?? (signal ? 128 : 1))
})
