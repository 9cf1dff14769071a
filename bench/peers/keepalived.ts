/**
 * Peer figure for the failover benchmark: keepalived (VRRP) takeover time with its default timing
 * (advert_int 1, preempt on, no preempt_delay), two nodes, measured on this machine.
 *
 * Topology: two network namespaces joined by a veth pair (10.200.0.1/24 and 10.200.0.2/24, no route
 * out), one keepalived per namespace, unicast VRRP, VIP 10.200.0.100/24; MASTER priority 150 on a,
 * BACKUP priority 100 on b. Each state change runs a notify script that appends `$EPOCHREALTIME STATE`
 * to a per-node file (bash builtin clock, no fork), so the takeover instant is an event, not a poll.
 *
 * A run: wait until a is MASTER and b BACKUP with the VIP on a only, wait a random 1.5 to 2.5 s (so
 * the kill falls at a random phase of the 1 s advert cycle, as a real crash would), SIGKILL a's VRRP
 * child (it sends the adverts; t0), let its parent reap it, SIGKILL the parent; takeover = b's MASTER
 * timestamp - t0, and b must then hold the VIP. keepalived runs with --dont-respawn so the parent cannot
 * restart the child in between; the child goes first because it would shut down gracefully (priority 0
 * advert, near-instant takeover) on its parent's death, and it is reaped by its parent because an
 * orphaned zombie may never be reaped (PID 1 of some sandboxes does not). Then a's stale VIP is removed
 * (a crashed host comes back without it), a's keepalived is restarted and preempts.
 *
 * Needs root, iproute2 and the Debian package `keepalived`. Namespaces, processes and the temp dir are
 * removed at the end, also on error and on SIGINT/SIGTERM/SIGHUP.
 * Usage: npx tsx bench/peers/keepalived.ts [--runs N] [--advert-int S]   (prints the JSON)
 */
import { type ChildProcess, execFile, execFileSync, spawn } from 'node:child_process'
import {
  chmodSync,
  closeSync,
  existsSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { performance } from 'node:perf_hooks'
import { pathToFileURL } from 'node:url'
import { parseArgs, promisify } from 'node:util'

export interface KeepalivedResult {
  runs: number
  takeover_p50_ms: number
  takeover_p95_ms: number
  takeover_p99_ms: number
  /** VRRP advert interval; the backup declares the master down after 3 of them plus a skew. */
  advert_int_s?: number
  /** Runs where b became MASTER before a was killed (those runs are not counted as takeovers). */
  false_takeovers?: number
  version: string
  samples_ms: number[]
}

const MAX_RUNS = 200
const VIP = '10.200.0.100'
const STEADY_TIMEOUT_MS = 30_000
const TAKEOVER_TIMEOUT_MS = 20_000
const EXIT_TIMEOUT_MS = 5_000
const run = promisify(execFile)

interface Node {
  name: 'a' | 'b'
  ns: string
  dev: string
  ip: string
  peer_ip: string
  priority: number
  state: 'MASTER' | 'BACKUP'
  dir: string
  conf: string
  pidfile: string
  vrrp_pidfile: string
  statefile: string
  logfile: string
  proc: ChildProcess | null
  exited: Promise<void> | null
  vrrp_pid: number | null
}

interface StateLine {
  t_ms: number
  state: string
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
/** Wall clock (CLOCK_REALTIME) in ms with sub-ms resolution, comparable with bash $EPOCHREALTIME. */
const wallMs = () => performance.timeOrigin + performance.now()
const round1 = (x: number) => Math.round(x * 10) / 10

/** Nearest-rank percentile, as bench/failover.ts. */
function pct(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!
}

async function waitUntil<T>(what: string, timeout_ms: number, probe: () => Promise<T | null> | T | null) {
  const deadline = Date.now() + timeout_ms
  for (;;) {
    const value = await probe()
    if (value !== null) return value
    if (Date.now() > deadline) throw new Error(`timeout after ${timeout_ms} ms waiting for ${what}`)
    await sleep(10)
  }
}

export async function keepalivedVersion(): Promise<string> {
  let out: string
  try {
    const { stdout, stderr } = await run('keepalived', ['--version'], { timeout: 10_000 })
    out = stdout + stderr
  } catch (err: any) {
    if (err?.code === 'ENOENT') throw new Error('keepalived not found: apt-get install -y keepalived')
    out = String(err?.stdout ?? '') + String(err?.stderr ?? '')
  }
  const m = /Keepalived v(\S+)/.exec(out)
  if (!m) throw new Error(`cannot parse keepalived --version: ${out.slice(0, 200)}`)
  return m[1]!
}

function readStates(node: Node): StateLine[] {
  if (!existsSync(node.statefile)) return []
  return readFileSync(node.statefile, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [t, state] = line.split(' ')
      return { t_ms: Number(t) * 1000, state: state ?? '' }
    })
}

async function hasVip(node: Node): Promise<boolean> {
  const { stdout } = await run('ip', ['-n', node.ns, '-o', '-4', 'addr', 'show', 'dev', node.dev], {
    timeout: 10_000,
  })
  return stdout.includes(` ${VIP}/`)
}

/**
 * VRRPv2 counts the advert interval in whole seconds; below 1 s keepalived needs VRRPv3, whose
 * interval is in centiseconds (RFC 5798).
 */
function config(node: Node, advert_int_s: number): string {
  return `global_defs {
  router_id sustain_ka_${node.name}
  script_user root
  enable_script_security${Number.isInteger(advert_int_s) ? '' : '\n  vrrp_version 3'}
}

vrrp_instance SUSTAIN {
  state ${node.state}
  interface ${node.dev}
  virtual_router_id 51
  priority ${node.priority}
  advert_int ${advert_int_s}
  unicast_src_ip ${node.ip}
  unicast_peer {
    ${node.peer_ip}
  }
  virtual_ipaddress {
    ${VIP}/24 dev ${node.dev}
  }
  notify ${join(node.dir, 'notify.sh')}
}
`
}

/** Reads /proc/PID/stat: [comm, state, ppid], or null if the process is gone. */
function procStat(pid: number): { comm: string; state: string; ppid: number } | null {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const close = text.lastIndexOf(')')
    const comm = text.slice(text.indexOf('(') + 1, close)
    const [state, ppid] = text
      .slice(close + 2)
      .split(' ')
      .slice(0, 2)
    return { comm, state: state!, ppid: Number(ppid) }
  } catch {
    return null
  }
}

/** True if PID runs keepalived with this node's config file (guards against PID reuse). */
function ours(pid: number, node: Node): boolean {
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')
    return argv.includes(node.conf) && argv.some((arg) => arg.endsWith('keepalived'))
  } catch {
    return false
  }
}

const alive = (pid: number) => {
  const s = procStat(pid)
  return s !== null && s.state !== 'Z' && s.state !== 'X'
}

function start(node: Node): void {
  rmSync(node.pidfile, { force: true })
  rmSync(node.vrrp_pidfile, { force: true })
  const log = openSync(node.logfile, 'a')
  // `ip netns exec` execs keepalived in place, so proc.pid is keepalived's parent process.
  const proc = spawn(
    'ip',
    [
      'netns',
      'exec',
      node.ns,
      'keepalived',
      '--dont-fork',
      '--dont-respawn',
      '--log-console',
      '--log-detail',
      '--no-syslog',
      '--vrrp',
      '--use-file',
      node.conf,
      '--pid',
      node.pidfile,
      '--vrrp_pid',
      node.vrrp_pidfile,
    ],
    { stdio: ['ignore', log, log] },
  )
  closeSync(log)
  node.proc = proc
  node.vrrp_pid = null
  node.exited = new Promise((resolve) => proc.once('exit', () => resolve()))
  proc.once('error', () => {})
}

/** Waits until the parent has become keepalived and its VRRP child (from the pid file) runs under it. */
async function vrrpChild(node: Node): Promise<number> {
  const parent = node.proc!.pid!
  return waitUntil(`keepalived VRRP child in ${node.ns}`, 10_000, () => {
    if (node.proc!.exitCode !== null || node.proc!.signalCode !== null) {
      throw new Error(`keepalived in ${node.ns} exited: ${tail(node.logfile)}`)
    }
    if (procStat(parent)?.comm !== 'keepalived' || !existsSync(node.vrrp_pidfile)) return null
    const pid = Number(readFileSync(node.vrrp_pidfile, 'utf8').trim())
    const stat = pid > 0 ? procStat(pid) : null
    return stat && stat.ppid === parent && stat.comm === 'keepalived' && alive(pid) ? pid : null
  })
}

function tail(file: string, lines = 15): string {
  try {
    return '\n' + readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n')
  } catch {
    return ''
  }
}

/** Waits until a is MASTER and b BACKUP (latest notify of each), the VIP on a and not on b. */
async function steady(a: Node, b: Node): Promise<void> {
  await waitUntil('a MASTER, b BACKUP, VIP on a only', STEADY_TIMEOUT_MS, async () => {
    for (const n of [a, b]) {
      if (n.proc?.exitCode !== null || n.proc?.signalCode !== null) {
        throw new Error(`keepalived in ${n.ns} exited: ${tail(n.logfile)}`)
      }
    }
    const sa = readStates(a).at(-1)?.state
    const sb = readStates(b).at(-1)?.state
    if (sa !== 'MASTER' || sb !== 'BACKUP') return null
    return (await hasVip(a)) && !(await hasVip(b)) ? true : null
  })
}

/** Sleeps synchronously (cleanup runs from signal and exit handlers). */
const sleepSync = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms)

/** True once PID is gone from /proc (reaped), not merely a zombie. */
const reaped = (pid: number) => procStat(pid) === null

/**
 * SIGKILLs node's VRRP child, waits (bounded) until its parent has reaped it, then SIGKILLs the parent
 * if it has not exited on its own (--dont-respawn). Returns the wall time of the child's kill.
 */
function killNode(node: Node): number {
  const parent = node.proc?.pid
  const running = node.proc !== null && node.proc.exitCode === null && node.proc.signalCode === null
  const child = node.vrrp_pid
  let t0 = wallMs()
  if (child && !reaped(child) && ours(child, node)) {
    process.kill(child, 'SIGKILL')
    t0 = wallMs()
    for (let i = 0; i < 200 && running && !reaped(child); i++) sleepSync(5)
  }
  if (running && parent) {
    try {
      process.kill(parent, 'SIGKILL')
    } catch {}
  }
  return t0
}

/** Crashes a's keepalived (see killNode); returns t0, once both processes are gone. */
async function crash(node: Node): Promise<number> {
  const parent = node.proc!.pid!
  const child = node.vrrp_pid!
  if (procStat(child)?.ppid !== parent || !ours(child, node) || !ours(parent, node)) {
    throw new Error(`keepalived ${parent} / VRRP child ${child} are not the processes started for ${node.ns}`)
  }
  const exited = node.exited
  const t0 = killNode(node)
  await Promise.race([
    exited,
    sleep(EXIT_TIMEOUT_MS).then(() => {
      throw new Error(`keepalived ${parent} did not exit after SIGKILL`)
    }),
  ])
  if (!reaped(child))
    process.stderr.write(`warning: VRRP child ${child} was orphaned before its parent reaped it\n`)
  node.proc = null
  node.vrrp_pid = null
  return t0
}

function makeNode(name: 'a' | 'b', dir: string): Node {
  const a = name === 'a'
  const ndir = join(dir, name)
  return {
    name,
    ns: `sustain-ka-${name}-${process.pid}`,
    dev: `ka-${name}`,
    ip: a ? '10.200.0.1' : '10.200.0.2',
    peer_ip: a ? '10.200.0.2' : '10.200.0.1',
    priority: a ? 150 : 100,
    state: a ? 'MASTER' : 'BACKUP',
    dir: ndir,
    conf: join(ndir, 'keepalived.conf'),
    pidfile: join(ndir, 'keepalived.pid'),
    vrrp_pidfile: join(ndir, 'vrrp.pid'),
    statefile: join(ndir, 'state'),
    logfile: join(ndir, 'keepalived.log'),
    proc: null,
    exited: null,
    vrrp_pid: null,
  }
}

/** Synchronous and idempotent, so it can run from signal and exit handlers too. */
function cleanup(nodes: Node[], dir: string, namespaces: string[]): void {
  for (const n of nodes) {
    killNode(n)
    n.proc = null
    n.vrrp_pid = null
  }
  for (const ns of namespaces) {
    try {
      execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore', timeout: 10_000 })
    } catch {}
  }
  namespaces.length = 0
  rmSync(dir, { recursive: true, force: true })
}

export async function measureKeepalived(runs: number, advert_int_s = 1): Promise<KeepalivedResult> {
  if (!Number.isInteger(runs) || runs < 1 || runs > MAX_RUNS) {
    throw new Error(`runs must be an integer in 1..${MAX_RUNS}, got ${runs}`)
  }
  if (
    !(advert_int_s >= 0.01 && advert_int_s <= 255) ||
    Math.round(advert_int_s * 100) !== advert_int_s * 100
  ) {
    throw new Error(`advert_int_s must be 0.01..255 in steps of 0.01, got ${advert_int_s}`)
  }
  if (process.getuid?.() !== 0) throw new Error('measureKeepalived needs root (network namespaces)')
  const version = await keepalivedVersion()

  const dir = mkdtempSync(join(tmpdir(), 'sustain-ka-'))
  const a = makeNode('a', dir)
  const b = makeNode('b', dir)
  const namespaces: string[] = []
  const clean = () => cleanup([a, b], dir, namespaces)
  const onSignal = (signal: NodeJS.Signals) => {
    clean()
    process.kill(process.pid, signal)
  }
  const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP']
  for (const s of signals) process.once(s, onSignal)
  process.once('exit', clean)

  try {
    for (const ns of [a.ns, b.ns]) {
      await run('ip', ['netns', 'add', ns], { timeout: 10_000 })
      namespaces.push(ns)
    }
    await run(
      'ip',
      ['link', 'add', a.dev, 'netns', a.ns, 'type', 'veth', 'peer', 'name', b.dev, 'netns', b.ns],
      {
        timeout: 10_000,
      },
    )
    for (const n of [a, b]) {
      await run('ip', ['-n', n.ns, 'link', 'set', 'lo', 'up'], { timeout: 10_000 })
      await run('ip', ['-n', n.ns, 'addr', 'add', `${n.ip}/24`, 'dev', n.dev], { timeout: 10_000 })
      await run('ip', ['-n', n.ns, 'link', 'set', n.dev, 'up'], { timeout: 10_000 })
      execFileSync('mkdir', ['-m', '0700', n.dir])
      writeFileSync(n.conf, config(n, advert_int_s), { mode: 0o600 })
      const notify = join(n.dir, 'notify.sh')
      // keepalived calls: notify INSTANCE NAME STATE PRIORITY
      writeFileSync(notify, `#!/bin/bash\nprintf '%s %s\\n' "$EPOCHREALTIME" "$3" >> '${n.statefile}'\n`)
      chmodSync(notify, 0o700)
    }

    start(a)
    a.vrrp_pid = await vrrpChild(a)
    await waitUntil('a MASTER', STEADY_TIMEOUT_MS, () =>
      readStates(a).at(-1)?.state === 'MASTER' ? true : null,
    )
    start(b)
    b.vrrp_pid = await vrrpChild(b)

    const samples: number[] = []
    // b taking over while a still runs (a short advert interval on a busy machine): a false failover.
    let false_takeovers = 0
    for (let i = 0; i < runs; i++) {
      await steady(a, b)
      const steady_seen = readStates(b).length
      await sleep(1500 + Math.random() * 1000)
      const seen = readStates(b).length
      if (
        readStates(b)
          .slice(steady_seen)
          .some((l) => l.state === 'MASTER')
      ) {
        false_takeovers++
        continue
      }
      const t0 = await crash(a)
      const master = await waitUntil('b MASTER after the kill', TAKEOVER_TIMEOUT_MS, () => {
        return (
          readStates(b)
            .slice(seen)
            .find((l) => l.state === 'MASTER') ?? null
        )
      })
      const takeover = master.t_ms - t0
      if (!(takeover > 0)) throw new Error(`b MASTER at ${master.t_ms} not after the kill at ${t0}`)
      await waitUntil('VIP on b', 5_000, async () => ((await hasVip(b)) ? true : null))
      samples.push(round1(takeover))

      // a comes back as a rebooted host would: without the VIP it held when it died.
      if (await hasVip(a)) {
        await run('ip', ['-n', a.ns, 'addr', 'del', `${VIP}/24`, 'dev', a.dev], { timeout: 10_000 })
      }
      start(a)
      a.vrrp_pid = await vrrpChild(a)
    }
    await steady(a, b)

    return {
      runs: samples.length,
      takeover_p50_ms: pct(samples, 50),
      takeover_p95_ms: pct(samples, 95),
      takeover_p99_ms: pct(samples, 99),
      advert_int_s,
      false_takeovers,
      version,
      samples_ms: samples,
    }
  } catch (err) {
    for (const n of [a, b]) process.stderr.write(`--- keepalived ${n.name} log tail:${tail(n.logfile, 30)}\n`)
    throw err
  } finally {
    clean()
    for (const s of signals) process.removeListener(s, onSignal)
    process.removeListener('exit', clean)
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  const { values } = parseArgs({
    options: { runs: { type: 'string', default: '5' }, 'advert-int': { type: 'string', default: '1' } },
  })
  const result = await measureKeepalived(Number(values.runs), Number(values['advert-int']))
  console.log(JSON.stringify(result, null, 2))
}
