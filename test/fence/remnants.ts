import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { readdirSync, readFileSync, readlinkSync } from 'node:fs'
import { connect } from 'node:net'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { sendMail } from '../../examples/mail/smtp-client.ts'
import { childrenOf, type LocalNode } from '../../src/demo/local-federation.ts'

/**
 * What is left of a service, read from /proc without the code under test: its processes as listed
 * before the kill (every descendant of its leader, named by pid and start time so a reused pid does not
 * count), and any process whose working directory, root or an open file lies under the node's service
 * directory (a Postfix daemon chdirs to its queue there; a process forked after the listing shows here).
 */
interface Proc {
  pid: number
  ppid: number
  state: string
  start: string
}

function stat(pid: number): Proc | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'latin1')
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ')
    return { pid, ppid: Number(fields[1]), state: fields[0]!, start: fields[19]! }
  } catch {
    return undefined
  }
}

function allPids(): number[] {
  return readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name))
    .map(Number)
}

const live = (p: Proc | undefined): p is Proc => p !== undefined && p.state !== 'Z' && p.state !== 'X'

/** The leader and all its descendants now (pid -> start time). */
export function processTree(leader: number): Map<number, string> {
  const procs = allPids().map(stat).filter(live)
  const tree = new Map<number, string>()
  const root = procs.find((p) => p.pid === leader)
  if (root) tree.set(root.pid, root.start)
  for (let grew = true; grew; ) {
    grew = false
    for (const p of procs) {
      if (!tree.has(p.pid) && tree.has(p.ppid)) {
        tree.set(p.pid, p.start)
        grew = true
      }
    }
  }
  return tree
}

function touches(pid: number, under: string): boolean {
  const inside = (link: string) => link === under || link.startsWith(`${under}/`)
  for (const name of ['cwd', 'root', 'exe']) {
    try {
      if (inside(readlinkSync(`/proc/${pid}/${name}`))) return true
    } catch {}
  }
  let fds: string[] = []
  try {
    fds = readdirSync(`/proc/${pid}/fd`)
  } catch {}
  for (const fd of fds) {
    try {
      if (inside(readlinkSync(`/proc/${pid}/fd/${fd}`))) return true
    } catch {}
  }
  return false
}

/** Processes of the service still running: from `tree`, and any (but this one) touching `under`. */
export function remnants(tree: ReadonlyMap<number, string>, under: string): number[] {
  const left = new Set<number>()
  for (const [pid, start] of tree) {
    const p = stat(pid)
    if (live(p) && p.start === start) left.add(pid)
  }
  for (const pid of allPids()) {
    if (pid !== process.pid && !left.has(pid) && live(stat(pid)) && touches(pid, under)) left.add(pid)
  }
  return [...left]
}

export function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1')
    socket.once('connect', () => {
      socket.destroy()
      resolve(true)
    })
    socket.once('error', () => resolve(false))
  })
}

/**
 * Polls (every 1 ms, bounded) until no remnant runs and the port refuses connections; resolves the
 * milliseconds from `since` (performance.now()) to the first poll that found the listed processes gone
 * and the port closed, confirmed by a full scan of /proc (slower, so not part of every poll), or throws
 * naming what is left.
 */
export async function waitServiceGone(
  tree: ReadonlyMap<number, string>,
  under: string,
  port: number,
  since: number,
  timeout_ms: number,
): Promise<number> {
  const deadline = since + timeout_ms
  for (;;) {
    const listed_alive = [...tree].some(([pid, start]) => {
      const p = stat(pid)
      return live(p) && p.start === start
    })
    const at = performance.now()
    if (!listed_alive && !(await portOpen(port)) && remnants(tree, under).length === 0) return at - since
    if (performance.now() > deadline) {
      const left = remnants(tree, under)
      const what = left.map((pid) => `${pid} ${commandLine(pid)}`)
      throw new Error(
        `after ${timeout_ms} ms the service is not gone: ${what.join('; ') || `port ${port} open`}`,
      )
    }
    await new Promise((resolve) => setTimeout(resolve, 1))
  }
}

/**
 * SIGKILL of a local federation node's process alone (its service left to the fence), then waits until
 * every process of its service is gone and its port is closed. Resolves when the kill was sent (epoch ms).
 */
export async function killNodeOnly(node: LocalNode, timeout_ms = 5000): Promise<number> {
  const [leader] = childrenOf(node.pid!)
  if (leader === undefined) throw new Error(`node ${node.name} has no service process to watch`)
  const tree = processTree(leader)
  const killed_ms = Date.now()
  const killed_at = performance.now()
  node.signal('SIGKILL', 'node')
  await waitServiceGone(tree, join(node.data_dir, 'service'), node.port, killed_at, timeout_ms)
  return killed_ms
}

function commandLine(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'latin1').replaceAll('\0', ' ')
  } catch {
    return '(gone)'
  }
}

const STAND_IN = fileURLToPath(new URL('./node-stand-in.ts', import.meta.url))

export interface StandIn {
  child: ChildProcess
  /** The service's leader (the fence's first process) and its start time. */
  leader: number
  leader_start: string | undefined
  /** The stand-in's JSON log lines so far. */
  records: Record<string, unknown>[]
}

/** Starts node-stand-in.ts in its own process group; resolves once its service is started. */
export async function startStandIn(
  service_dir: string,
  data_dir: string,
  port: number,
  started: StandIn[],
  timeout_ms = 60_000,
): Promise<StandIn> {
  const child = spawn(process.execPath, ['--import', 'tsx', STAND_IN, service_dir, data_dir, String(port)], {
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  })
  const records: Record<string, unknown>[] = []
  const stand_in: StandIn = { child, leader: 0, leader_start: undefined, records }
  started.push(stand_in)
  let stderr = ''
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr += chunk.toString()
    const lines = stderr.split('\n')
    stderr = lines.pop()!
    for (const line of lines) {
      try {
        records.push(JSON.parse(line) as Record<string, unknown>)
      } catch {
        records.push({ msg: line })
      }
    }
  })
  let stdout = ''
  child.stdout!.on('data', (chunk: Buffer) => {
    stdout += chunk.toString()
  })
  const timer = setTimeout(() => child.kill('SIGKILL'), timeout_ms)
  try {
    await Promise.race([
      new Promise<void>((resolve) => {
        const check = () => (stdout.includes('\n') ? resolve() : child.stdout!.once('data', check))
        check()
      }),
      once(child, 'exit').then(([code]) => {
        const logged = records.map((r) => r['msg']).join('\n')
        throw new Error(`the node stand-in exited (${code}) before its service started:\n${logged}`)
      }),
    ])
  } finally {
    clearTimeout(timer)
  }
  stand_in.leader = (JSON.parse(stdout.split('\n')[0]!) as { pid: number }).pid
  stand_in.leader_start = stat(stand_in.leader)?.start
  return stand_in
}

/** Ends every stand-in this test started, with its group (the fence then ends the services). */
export async function stopStandIns(started: StandIn[]): Promise<void> {
  for (const { child, leader, leader_start } of started.splice(0)) {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = once(child, 'exit')
      try {
        process.kill(-child.pid!, 'SIGKILL')
      } catch {}
      await exited
    }
    // Were the fence broken, its service would still run: end its group too (the test then fails).
    if (leader > 1 && leader_start !== undefined && stat(leader)?.start === leader_start) {
      try {
        process.kill(-leader, 'SIGKILL')
      } catch {}
    }
  }
}

/** Waits (bounded, polling) for a log record of the stand-in matching `match`. */
export async function waitRecord(
  stand_in: StandIn,
  match: (record: Record<string, unknown>) => boolean,
  timeout_ms: number,
  what: string,
): Promise<Record<string, unknown>> {
  const deadline = performance.now() + timeout_ms
  for (;;) {
    const found = stand_in.records.find(match)
    if (found) return found
    if (performance.now() > deadline) throw new Error(`no ${what} within ${timeout_ms} ms`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

/**
 * Sends mail to `port` in a loop (bounded) until stopped; counts acknowledgements and failures, and
 * keeps each acknowledged subject with when its 250 arrived (Date.now()).
 */
export function mailLoad(port: number, prefix = 'm') {
  let stopped = false
  const counts = { acked: 0, failed: 0 }
  const acked: { subject: string; at_ms: number }[] = []
  const done = (async () => {
    for (let i = 0; i < 100_000 && !stopped; i++) {
      try {
        await sendMail({
          port,
          from: 'load@example.org',
          to: ['alice@example.org'],
          subject: `${prefix}-${i}`,
          text: 'x',
          timeout_ms: 2000,
        })
        counts.acked++
        acked.push({ subject: `${prefix}-${i}`, at_ms: Date.now() })
      } catch {
        counts.failed++
        await new Promise((resolve) => setTimeout(resolve, 5))
      }
    }
  })()
  return {
    counts,
    acked,
    stop: async () => {
      stopped = true
      await done
    },
  }
}
