/**
 * `npm run test:system [-- --install] [vitest args]`: the suites that need Debian packages (real SSH,
 * Postfix, QEMU, tmux, Python's mbox reader, a C compiler), after the default suite's `npm test`.
 * Says in one line what it needs; with --install (as root) installs the missing packages through apt-get;
 * with something still missing it fails with the command that fixes it, before any suite starts.
 */
import { spawn, spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { buildCrc32c } from '../../src/native/build-crc32c.ts'
import { fixFor, missing, REQUIREMENTS, systemPackages } from './requirements.ts'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))

function apt(args: string[], input?: string): void {
  const result = spawnSync(args[0]!, args.slice(1), {
    stdio: [input === undefined ? 'ignore' : 'pipe', 'inherit', 'inherit'],
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    ...(input === undefined ? {} : { input }),
  })
  if (result.status !== 0) throw new Error(`${args.join(' ')} failed (${result.status ?? result.signal})`)
}

async function install(): Promise<void> {
  const packages = [...new Set(missing().flatMap((r) => r.packages))]
  if (packages.length > 0) {
    if (process.getuid?.() !== 0) throw new Error('--install runs apt-get: run it as root')
    console.log(`test:system: apt-get install ${packages.join(' ')}`)
    apt(['apt-get', 'update', '-qq'])
    // Postfix without its configuration dialogue: every test writes its own instance config.
    apt(['debconf-set-selections'], 'postfix postfix/main_mailer_type select No configuration\n')
    apt(['apt-get', 'install', '-y', '-qq', '--no-install-recommends', ...packages])
  }
  if (!REQUIREMENTS.crc32c.present() && REQUIREMENTS.cc.present()) {
    const why = await buildCrc32c()
    if (why !== null) throw new Error(`building the hardware crc32c: ${why}`)
  }
}

const args = process.argv.slice(2)
const wants_install = args.includes('--install')
const vitest_args = args.filter((a) => a !== '--install')

console.log(
  `test:system needs Debian packages: ${systemPackages().join(' ')} (as root: npm run test:system -- --install)`,
)
if (wants_install) await install()
const absent = missing()
if (absent.length > 0) {
  for (const r of absent) console.error(`test:system: missing ${r.what} (${r.used_by})`)
  console.error(`test:system: fix: ${fixFor(absent)}`)
  process.exit(1)
}

const child = spawn(
  'bash',
  ['test/loopback-only.sh', 'npx', 'vitest', 'run', '--config', 'vitest.system.config.ts', ...vitest_args],
  { cwd: ROOT, stdio: 'inherit' },
)
// The suites end their own children; a signal to us goes to the runner, which then exits with it.
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => child.kill(signal))
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 128 : 1)))
