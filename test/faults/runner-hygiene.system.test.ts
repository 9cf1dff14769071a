import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { readdirSync, readFileSync, rmSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, it } from 'vitest'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))

/** pid -> [ppid, start time in clock ticks] for every process now (start time tells a reused PID apart). */
function processTable(): Map<number, { ppid: number; start: string; cmd: string }> {
  const table = new Map<number, { ppid: number; start: string; cmd: string }>()
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8')
      // The command name is in parentheses and may hold spaces: the fields after it are fixed.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      const cmd = readFileSync(`/proc/${name}/cmdline`, 'utf8').replace(/\0/g, ' ').trim()
      table.set(Number(name), { ppid: Number(fields[1]), start: fields[19]!, cmd })
    } catch {} // gone meanwhile
  }
  return table
}

/** Every descendant of `root` now, with its start time. */
function descendants(root: number): Map<number, { start: string; cmd: string }> {
  const table = processTable()
  const found = new Map<number, { start: string; cmd: string }>()
  const queue = [root]
  for (let i = 0; i < queue.length && i < 10_000; i++) {
    for (const [pid, p] of table) {
      if (p.ppid === queue[i] && !found.has(pid)) {
        found.set(pid, { start: p.start, cmd: p.cmd })
        queue.push(pid)
      }
    }
  }
  return found
}

/** The recorded processes still alive (same PID and same start time). */
function survivors(recorded: Map<number, { start: string; cmd: string }>): string[] {
  const now = processTable()
  return [...recorded]
    .filter(([pid, p]) => now.get(pid)?.start === p.start)
    .map(([pid, p]) => `${pid} ${p.cmd}`)
}

/** Everything any test here saw running under its runner (afterAll ends what is left, by PID). */
const seen = new Map<number, { start: string; cmd: string }>()
let runner: ChildProcess | null = null
afterAll(() => {
  // Whatever the test found alive is ended here, by the PIDs the run started (never by name).
  for (const line of survivors(seen)) {
    try {
      process.kill(Number(line.split(' ')[0]), 'SIGKILL')
    } catch {}
  }
  // A runner killed by SIGKILL cannot remove its temporary directory: the nodes' command lines name it.
  for (const p of seen.values()) {
    const dir = /\/tmp\/sustain-bench-failover-[A-Za-z0-9]+/.exec(p.cmd)?.[0]
    if (dir) rmSync(dir, { recursive: true, force: true })
  }
  if (runner?.pid && runner.exitCode === null && runner.signalCode === null) {
    try {
      process.kill(-runner.pid, 'SIGKILL')
    } catch {}
  }
})

/**
 * Starts `npm run bench:failover -- --quick` in a process group of its own (as `timeout` makes one),
 * records every process under it until five `sustain join` nodes and their services run, sends `signal`
 * to the group and resolves once the runner exited, with what is still alive of what it started.
 */
async function endBenchWith(signal: NodeJS.Signals): Promise<string[]> {
  const { SUSTAIN_IN_NETNS: _, ...env } = process.env // its own namespaces, as from a shell
  runner = spawn('npm', ['run', '-s', 'bench:failover', '--', '--quick'], {
    cwd: ROOT,
    detached: true,
    stdio: 'ignore',
    env,
  })
  const started = new Map<number, { start: string; cmd: string }>()
  const record = () => {
    for (const [pid, p] of descendants(runner!.pid!)) {
      started.set(pid, p)
      seen.set(pid, p)
    }
  }
  const exited = once(runner, 'exit')
  const deadline = Date.now() + 120_000
  for (let i = 0; i < 600 && Date.now() < deadline; i++) {
    record()
    if ([...started.values()].filter((p) => / join /.test(p.cmd)).length >= 5) break
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
  await new Promise((resolve) => setTimeout(resolve, 3000)) // the server's service starts: recorded too
  record()
  expect([...started.values()].filter((p) => / join /.test(p.cmd)).length).toBeGreaterThanOrEqual(5)
  process.kill(-runner.pid!, signal)
  await exited
  // The runner's own cleanup is bounded (5 s per node, then SIGKILL): give it that, then look.
  for (let i = 0; i < 100 && survivors(started).length > 0; i++) {
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
  return survivors(started)
}

describe('process hygiene: a benchmark ended from outside leaves nothing behind', () => {
  it('SIGTERM to the process group of npm run bench:failover -- --quick while five nodes run', async () => {
    expect(await endBenchWith('SIGTERM')).toEqual([])
  })

  it('SIGKILL to the process group (a hard timeout): its loopback-only namespace ends the nodes too', async () => {
    expect(await endBenchWith('SIGKILL')).toEqual([])
  })
})
