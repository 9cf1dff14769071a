import { EventEmitter } from 'node:events'
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { stringify } from 'yaml'
import { createLogger, type Logger } from '../../lib/log.ts'
import type { DriverEvent } from '../../src/drivers/driver.ts'
import { createProcessDriver, type ProcessDriver } from '../../src/drivers/process/driver.ts'
import { parseServiceManifest } from '../../src/drivers/process/manifest.ts'

/** A service made of bash scripts: MODE picks how it runs (see SERVICE). */
export const SERVICE = `#!/usr/bin/env bash
echo "service $$ starting in mode \${SERVICE_MODE:-plain}"
echo "stderr line" >&2
# The service runs in a PID namespace of its own: $! is a pid in it. /proc (the host's) names each
# process by its pid outside, which is what the tests look at.
child() { ( read -r pid _ < /proc/self/stat; echo "$pid" >> "$SUSTAIN_STATE_DIR/children"; exec "$@" ) & }
case "\${SERVICE_MODE:-plain}" in
  plain) exec sleep 1000 ;;
  children)
    child sleep 1000
    child sleep 1000
    wait ;;
  stubborn)
    trap '' TERM
    child sleep 1000
    wait ;;
  escape)
    # A daemon's double fork: a new session, out of the service's process group, its parent gone. Each
    # writes its pid from inside its new session: a reader never sees it before setsid took effect.
    detached() { ( setsid bash -c 'read -r pid _ < /proc/self/stat; echo "$pid" >> "$SUSTAIN_STATE_DIR/children"; exec sleep 1000' ) & }
    detached
    ( detached ) # double fork: its parent is gone at once
    wait ;;
esac
`

/** probe: healthy while $SUSTAIN_STATE_DIR/healthy exists. Every call is logged to $HELPER_LOG. */
const HELPER = `#!/usr/bin/env bash
echo "$1" >> "$HELPER_LOG"
case "$1" in
  probe) [[ -e "$SUSTAIN_STATE_DIR/healthy" ]] ;;
  quiesce|resume) [[ \${QUIESCE:-no} == yes ]] || exit 64 ;;
  slow) sleep 30 & echo $! > "$HELPER_LOG.slowpid"; wait ;;
  echo) echo "args: \${*:2}"; cat; echo "to stderr" >&2; exit 3 ;;
  env) echo "$SUSTAIN_PORT $SUSTAIN_SERVICE_DIR $SUSTAIN_STATE_DIR $EXTRA \${CONTEXT:-}" ;;
  *) echo "unknown verb $1" >&2; exit 64 ;;
esac
`

export interface Fixture {
  dir: string
  service_dir: string
  state_dir: string
  helper_log: string
  records: Record<string, unknown>[]
  /** Resolves with the first log record (already written or still to come) that `match` accepts. */
  logged(
    match: (record: Record<string, unknown>) => boolean,
    timeout_ms?: number,
  ): Promise<Record<string, unknown>>
  log: Logger
  driver(manifest?: Record<string, unknown>, options?: { precopy?: boolean }): Promise<ProcessDriver>
  cleanup(): Promise<void>
}

export async function fixture(): Promise<Fixture> {
  const dir = await mkdtemp(join(tmpdir(), 'sustain-driver-'))
  const service_dir = join(dir, 'service')
  await mkdir(service_dir)
  await writeFile(join(service_dir, 'service.sh'), SERVICE)
  await writeFile(join(service_dir, 'helper.sh'), HELPER)
  await chmod(join(service_dir, 'service.sh'), 0o755)
  await chmod(join(service_dir, 'helper.sh'), 0o755)
  const helper_log = join(dir, 'helper.log')
  const records: Record<string, unknown>[] = []
  const written = new EventEmitter()
  const log = createLogger({
    level: 'debug',
    destination: {
      write: (line: string) => {
        const record = JSON.parse(line) as Record<string, unknown>
        records.push(record)
        written.emit('record', record)
      },
    },
  })
  const drivers: ProcessDriver[] = []
  return {
    dir,
    service_dir,
    state_dir: join(dir, 'data', 'state'),
    helper_log,
    records,
    logged(match, timeout_ms = 10_000) {
      const found = records.find(match)
      if (found) return Promise.resolve(found)
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          written.off('record', listener)
          reject(new Error(`no matching log record within ${timeout_ms} ms`))
        }, timeout_ms)
        const listener = (record: Record<string, unknown>) => {
          if (!match(record)) return
          clearTimeout(timer)
          written.off('record', listener)
          resolve(record)
        }
        written.on('record', listener)
      })
    },
    log,
    async driver(overrides = {}, options = {}) {
      const manifest = parseServiceManifest({
        version: 1,
        name: 'test',
        type: 'type1',
        command: ['./service.sh'],
        helper: './helper.sh',
        probe_interval_ms: 50,
        probe_timeout_ms: 1000,
        stop_timeout_ms: 300,
        ...overrides,
        env: { HELPER_LOG: helper_log, ...(overrides['env'] as Record<string, string> | undefined) },
      })
      const driver = createProcessDriver({
        service_dir,
        state_dir: join(dir, 'data', 'state'),
        port: 2500,
        log,
        manifest,
        ...options,
      })
      drivers.push(driver)
      return driver
    },
    async cleanup() {
      for (const driver of drivers) await driver.close()
      await rm(dir, { recursive: true, force: true })
    },
  }
}

/** The next driver event matching `kind`, or a rejection after `timeout_ms`. */
export function nextEvent<K extends DriverEvent['kind']>(
  driver: ProcessDriver,
  kind: K,
  timeout_ms = 10_000,
): Promise<Extract<DriverEvent, { kind: K }>> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      driver.off('event', listener)
      reject(new Error(`no ${kind} event within ${timeout_ms} ms`))
    }, timeout_ms)
    const listener = (event: DriverEvent) => {
      if (event.kind !== kind) return
      clearTimeout(timer)
      driver.off('event', listener)
      resolve(event as Extract<DriverEvent, { kind: K }>)
    }
    driver.on('event', listener)
  })
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ESRCH') return false
    throw error
  }
}

/**
 * Waits (bounded) until kill(pid, 0) throws ESRCH. A dead orphan stays a zombie until init reaps it,
 * which the init of this VM does lazily (about a second), hence the wait.
 */
export async function gone(pid: number, timeout_ms = 5000): Promise<boolean> {
  const deadline = performance.now() + timeout_ms
  while (alive(pid)) {
    if (performance.now() > deadline) return false
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  return true
}

export function manifestYaml(value: unknown): string {
  return stringify(value)
}
