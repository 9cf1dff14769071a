/**
 * The fault lab (issue 20): `npm run faults [-- --quick] [--seed S] [--only NAME] [--nodes N] [--runs R]
 * [--output-commit off|k] [--keep] [--merge] [--scale 5,10,20]`. Runs as PID 1 of the namespaces bench/faults/in-lab.sh makes: a
 * bridge, one namespace per node (a real `sustain join` with the mail example and its front door) and
 * one for the clients. Each nemesis (bench/faults/nemeses.ts, drawn from the seed) runs against a
 * settled federation while bench/faults/checker.py mails through every front door; the checker then
 * judges the mailboxes. Writes bench/results/faults.json and its section of bench/RESULTS.md.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { withTimeout } from '../../src/demo/local-federation.ts'
import type { NodeStatus } from '../../src/runtime/status.ts'
import { Prng } from '../../test/sim/prng.ts'
import { requireTools } from '../../test/system/requirements.ts'
import { NEMESES, QUICK } from './catalogue.ts'
import { type FaultRecord, type FaultsJson, type ScaleFigures, writeFaultResults } from './faults-results.ts'
import { createLabNodes, emptyDir, type LabNode, unmountSmallDisks, writeNodeDir } from './lab-federation.ts'
import { type LabNet, startLabNet } from './lab-net.ts'
import { type FaultApplied, healAll, type NemesisContext } from './nemeses.ts'
import { stopRelays } from './nemeses-relay.ts'
import { measureIdle } from './scale.ts'
import { readTimelines, type TimelineEvent } from './timelines.ts'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const CHECKER = join(ROOT, 'bench', 'faults', 'checker.py')

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    seed: { type: 'string' },
    only: { type: 'string' },
    nodes: { type: 'string' },
    runs: { type: 'string' },
    'output-commit': { type: 'string', default: 'off' },
    keep: { type: 'boolean', default: false },
    /** Keep the newest results' rows of the kinds (at their node count) this run does not run. */
    merge: { type: 'boolean', default: false },
    /** Write no results (the system test's short runs). */
    'no-results': { type: 'boolean', default: false },
    /** Idle federations of these sizes instead of nemeses (e.g. 5,10): the JSON's scale section. */
    scale: { type: 'string' },
    /** Every node's snapshot interval (the lab's default, 1000, is 5 times more often than Sustain's). */
    'snapshot-interval-ms': { type: 'string', default: '1000' },
  },
})
const QUICK_RUN = values.quick
const NODES = Number(values.nodes ?? 3)
const RUNS = Number(values.runs ?? (QUICK_RUN ? 1 : 10))
const SEED = Number(values.seed ?? Math.floor(Math.random() * 1_000_000))
const OUTPUT_COMMIT = values['output-commit']
const HOLD_MS = QUICK_RUN ? 8000 : 15_000
const SNAPSHOT_INTERVAL_MS = Number(values['snapshot-interval-ms'])
if (!Number.isInteger(SNAPSHOT_INTERVAL_MS) || SNAPSHOT_INTERVAL_MS < 100)
  throw new Error('--snapshot-interval-ms wants an integer >= 100')
/** With disk-full chosen, every data directory is a tmpfs this small (the nemesis fills the server's). */
const SMALL_DISK_MIB = 64
if (!/^(off|\d+)$/.test(OUTPUT_COMMIT)) throw new Error('--output-commit wants off or a number k')
if (!Number.isInteger(NODES) || NODES < 2 || NODES > 20) throw new Error('--nodes wants 2 to 20')
const chosen = NEMESES.filter((n) =>
  values.only !== undefined ? values.only.split(',').includes(n.name) : !QUICK_RUN || QUICK.includes(n.name),
)
if (chosen.length === 0) {
  throw new Error(`--only names none of: ${NEMESES.map((n) => n.name).join(', ')}`)
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))
/** 1, 5 and 15-minute load averages (as bench/lib/run-meta.ts records them on main). */
const loadavg = async () => (await readFile('/proc/loadavg', 'utf8')).split(' ').slice(0, 3).map(Number)
const started_ms = Date.now()
const log = (line: string) =>
  process.stdout.write(`[faults +${((Date.now() - started_ms) / 1000).toFixed(1)} s] ${line}\n`)

let nodes: LabNode[] = []
/** This run's directory (logs, data directories), once chosen. */
let run_dir: string | null = null
const children = new Set<ChildProcess>()

/** Ends every process the lab started (nodes by process group, checkers by PID), bounded. */
async function stopAll(): Promise<void> {
  stopRelays()
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL')
  for (const node of nodes) {
    node.signal('SIGCONT')
    node.signal('SIGTERM')
  }
  await Promise.all(
    nodes.map((node) =>
      node.waitExit(5000).catch(() => {
        node.signal('SIGKILL')
        return node.waitExit(5000).catch(() => {})
      }),
    ),
  )
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    log(`${signal}: stopping every lab process`)
    // An interrupted run has nothing to replay: its directory goes too, unless --keep.
    const cleanup = async () => {
      await stopAll()
      await unmountSmallDisks(nodes).catch(() => {})
      if (run_dir !== null && !values.keep) await rm(run_dir, { recursive: true, force: true })
    }
    void cleanup().finally(() => process.exit(signal === 'SIGINT' ? 130 : 143))
  })
}

async function statuses(): Promise<(NodeStatus | null)[]> {
  return Promise.all(nodes.map((n) => (n.running ? n.status(1500) : Promise.resolve(null))))
}

/**
 * Exactly one running node serves with a healthy service and every running node follows it; `quiet`:
 * and every other is a plain candidate (no merge, restore or election still going on).
 */
function oneServer(all: (NodeStatus | null)[], quiet: boolean): number | null {
  const running = nodes.filter((n) => n.running).map((n) => all[n.index])
  if (running.some((s) => s === null)) return null
  if (quiet && !running.every((s) => s!.node.role === 'server' || s!.node.role === 'candidate')) return null
  const servers = running.filter((s) => s!.node.role === 'server')
  if (servers.length !== 1 || servers[0]!.node.health !== 'ok') return null
  const key = servers[0]!.node.key
  if (!running.every((s) => s!.node.server === key)) return null
  return all.indexOf(servers[0]!)
}

/** Waits (polling every 250 ms, bounded) for one server; resolves with its index and the time taken. */
async function untilOneServer(
  timeout_ms: number,
  quiet = false,
): Promise<{ server: number; ms: number } | null> {
  const t = Date.now()
  for (let i = 0; i < 1000 && Date.now() - t < timeout_ms; i++) {
    const server = oneServer(await statuses(), quiet)
    if (server !== null) return { server, ms: Date.now() - t }
    await sleep(250)
  }
  return null
}

function runInClient(lab: LabNet, args: string[]): ChildProcess {
  const child = spawn('ip', ['netns', 'exec', lab.client.ns, 'python3', CHECKER, ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  children.add(child)
  child.once('exit', () => children.delete(child))
  return child
}

/** Whether the checker's sender printed `sending` (its clients run) within `timeout_ms`. */
async function untilSending(child: ChildProcess, timeout_ms: number): Promise<boolean> {
  let seen = ''
  let listener: ((data: Buffer) => void) | null = null
  const ready = new Promise<boolean>((resolve) => {
    listener = (data: Buffer) => {
      seen += data.toString()
      if (seen.includes('sending\n')) resolve(true)
    }
    child.stdout!.on('data', listener)
    child.once('exit', () => resolve(false))
  })
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), timeout_ms)
  })
  try {
    return await Promise.race([ready, timeout])
  } finally {
    clearTimeout(timer)
    if (listener) child.stdout!.off('data', listener)
  }
}

/** Milliseconds until the acks file holds an acknowledged mail, or null after `timeout_ms`. */
async function untilFirstAck(acks: string, timeout_ms: number): Promise<number | null> {
  const t0 = Date.now()
  // The checker appends a line per attempt; polling a file the sender writes (no event to wait on).
  while (Date.now() - t0 < timeout_ms) {
    const text = await readFile(acks, 'utf8').catch(() => '')
    if (text.includes('"ack_t"')) return Date.now() - t0
    await sleep(100)
  }
  return null
}

async function output(child: ChildProcess, timeout_ms: number, what: string): Promise<string> {
  let text = ''
  child.stdout!.on('data', (data: Buffer) => {
    text += data.toString()
  })
  const [code] = (await withTimeout(once(child, 'exit'), timeout_ms, what).catch((error: Error) => {
    child.kill('SIGKILL')
    throw error
  })) as [number | null]
  if (code !== 0) throw new Error(`${what} exited with ${code}`)
  return text
}

interface CheckResult {
  acknowledged: number
  lost: number | null
  duplicated: number | null
  outage_ms: number
  live_mailbox: string | null
  lost_acked_before_fault_ms?: number
  [key: string]: unknown
}

function printTimeline(notes: TimelineEvent[], events: TimelineEvent[], fault_t: number): void {
  const all = [...notes, ...events].sort((a, b) => a.t - b.t)
  for (const e of all) {
    const at = ((e.t - fault_t) / 1000).toFixed(2).padStart(7)
    process.stdout.write(`    ${at} s  ${e.who.padEnd(4)} ${e.what}\n`)
  }
}

const gitCommit = () =>
  execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim()

/** `--scale 5,10`: per size, an idle federation measured for a while, then its server SIGKILLed. */
async function scale(dir: string, sizes: number[]): Promise<number> {
  const load_before = await loadavg()
  const lab = await startLabNet(Math.max(...sizes))
  const figures: Record<string, ScaleFigures> = {}
  for (const size of sizes) {
    const sub = { ...lab, nodes: lab.nodes.slice(0, size) }
    nodes = (
      await createLabNodes(sub, join(dir, `scale-${size}`), {
        output_commit: OUTPUT_COMMIT,
        snapshot_interval_ms: SNAPSHOT_INTERVAL_MS,
      })
    ).nodes
    for (const node of nodes) node.start()
    const formed = await untilOneServer(240_000, true)
    if (formed === null) throw new Error(`${size} nodes did not form within 240 s`)
    await sleep(10_000) // past the joins' bursts
    const idle = await measureIdle(sub, nodes, QUICK_RUN ? 20_000 : 60_000, formed.server)
    if (size === 1) {
      figures[String(size)] = idle // no peer to take over: no failover to time
    } else {
      const server = nodes[formed.server]!
      const t = Date.now()
      server.signal('SIGKILL')
      await server.waitExit(10_000)
      const failover = await untilOneServer(120_000)
      figures[String(size)] = { ...idle, failover_ms: failover === null ? null : Date.now() - t }
    }
    log(`${size} nodes: ${JSON.stringify(figures[String(size)])}`)
    await stopAll()
    nodes = []
  }
  const load_after = await loadavg()
  if (!values['no-results']) {
    await writeFaultResults({
      commit: gitCommit(),
      date: new Date().toISOString(),
      command: '',
      nodes: NODES,
      seed: SEED,
      load_before,
      load_after,
      runs: [],
      scale: {
        nodes: figures,
        commit: gitCommit(),
        date: new Date().toISOString(),
        load_before,
        load_after,
        snapshot_interval_ms: SNAPSHOT_INTERVAL_MS,
      },
    })
  }
  log(`scale: load ${load_before.join(' ')} before, ${load_after.join(' ')} after`)
  if (!values.keep) await rm(dir, { recursive: true, force: true })
  return 0
}

/** The one-line command that draws the same faults again (on a fresh federation). */
const replayLine = (seed: number, name: string) =>
  `npm run faults -- --seed ${seed} --only ${name} --runs 1 --nodes ${NODES}${QUICK_RUN ? ' --quick' : ''}` +
  `${OUTPUT_COMMIT !== 'off' ? ` --output-commit ${OUTPUT_COMMIT}` : ''}`

async function main(): Promise<number> {
  if (values.scale !== undefined) {
    const sizes = values.scale.split(',').map(Number)
    if (sizes.some((n) => !Number.isInteger(n) || n < 1 || n > 20))
      throw new Error('--scale wants sizes 1 to 20')
    const dir = join(ROOT, '.tmp', 'faults', `scale-${new Date().toISOString().replace(/[:.]/g, '-')}`)
    await mkdir(dir, { recursive: true })
    run_dir = dir
    return scale(dir, sizes)
  }
  requireTools(
    'ip',
    'iptables',
    'python3',
    ...(chosen.some((n) => n.name === 'clock-skew') ? (['faketime'] as const) : []),
  )
  const dir = join(ROOT, '.tmp', 'faults', new Date().toISOString().replace(/[:.]/g, '-'))
  run_dir = dir
  const load_before = await loadavg()
  log(
    `seed ${SEED}, ${NODES} nodes, ${chosen.map((n) => n.name).join(' ')}, ${RUNS} run(s) each, load ${load_before.join(' ')}`,
  )
  const lab = await startLabNet(NODES)
  log(
    `lab up: nodes ${lab.nodes.map((h) => h.address).join(' ')}, client ${lab.client.address}; no route out`,
  )
  const options = {
    output_commit: OUTPUT_COMMIT,
    snapshot_interval_ms: SNAPSHOT_INTERVAL_MS,
    ...(chosen.some((n) => n.name === 'disk-full') ? { small_disk_mib: SMALL_DISK_MIB } : {}),
  }
  const created = await createLabNodes(lab, dir, options)
  nodes = created.nodes
  for (const node of nodes) node.start()
  // 20 nodes took ~185 s to form at load ~45 on 2 cores (the scale run): the bound grows with N.
  const form_ms = Math.max(120_000, NODES * 12_000)
  const first = await untilOneServer(form_ms)
  if (first === null) throw new Error(`the federation did not form within ${form_ms / 1000} s`)
  log(`federation formed: n${first.server} serves (${first.ms} ms)`)

  const runs: FaultRecord[] = []
  let failed = 0
  for (const nemesis of chosen) {
    for (let r = 0; r < RUNS; r++) {
      const seed = SEED + r
      for (const node of nodes) if (!node.running) node.start()
      const settled = await untilOneServer(90_000, true)
      if (settled === null) {
        // The previous fault left no settled federation: this run cannot start; the others still can.
        failed += 1
        log(
          `FAILED ${nemesis.name} seed ${seed}: no single quiet server within 90 s before it; logs kept in ${dir}`,
        )
        log(`replay: ${replayLine(seed, nemesis.name)}`)
        continue
      }
      const notes: TimelineEvent[] = []
      const note = (what: string) => {
        notes.push({ t: Date.now(), who: 'lab', what })
      }
      const ctx: NemesisContext = {
        lab,
        nodes,
        rng: new Prng(seed),
        hold_ms: HOLD_MS,
        note,
        sleep,
        wipe: async (node) => {
          await emptyDir(node.data_dir)
          await writeNodeDir(lab, node.data_dir, node.index, created.secret, options)
        },
      }
      const prefix = `${nemesis.name}-${seed}`
      const acks = join(dir, `${prefix}.acks.jsonl`)
      const stop_file = join(dir, `${prefix}.stop`)
      const doors = nodes.map((n) => n.door).join(',')
      const sender = runInClient(lab, [
        'send',
        '--doors',
        doors,
        '--prefix',
        prefix,
        '--out',
        acks,
        '--stop-file',
        stop_file,
        '--max-s',
        String((HOLD_MS * 6) / 1000 + 120),
      ])
      const sent = output(sender, HOLD_MS * 6 + 180_000, 'the checker (send)')
      sent.catch(() => {}) // awaited below; an error path that never gets there must not crash the lab
      // The fault's clock starts once the clients send (a loaded machine took 27 s to start them once,
      // so every mail of that run went out after the heal) and, within a bound, once one mail is
      // acknowledged: the baseline the outage is measured against.
      const sending = await untilSending(sender, 60_000)
      const start_t = Date.now()
      const first_ack_ms = await untilFirstAck(acks, 20_000)
      note(
        `clients sending (${sending ? 'ready' : 'not ready within 60 s'}); first acknowledgement ${
          first_ack_ms === null ? 'none within 20 s' : `after ${first_ack_ms} ms`
        }`,
      )
      await sleep(2000) // acknowledgements before the fault
      let applied: FaultApplied
      try {
        applied = await nemesis.run(ctx, settled.server)
      } finally {
        await healAll(ctx)
      }
      const healed = await untilOneServer(60_000)
      note(healed === null ? 'no single server within 60 s of the heal' : `one server: n${healed.server}`)
      // Merges of the heal finished: what the losers accepted is in the winner's mailbox before the check.
      const quiet = await untilOneServer(90_000, true)
      note(
        quiet === null
          ? 'still not quiet 90 s after the heal'
          : 'quiet: one server, every other node a candidate',
      )
      await sleep(2000) // mail after the heal, through the surviving server
      await writeFile(stop_file, '')
      await sent
      const end_t = Date.now()
      const check = runInClient(lab, [
        'check',
        '--acks',
        acks,
        '--prefix',
        prefix,
        '--doors',
        doors,
        '--mailboxes',
        nodes.map((n) => `n${n.index}=${n.mailbox_path}`).join(','),
        '--start-t',
        String(start_t / 1000),
        '--end-t',
        String(end_t / 1000),
        '--fault-t',
        String(applied.fault_t / 1000),
      ])
      const verdict = JSON.parse(await output(check, 120_000, 'the checker (check)')) as CheckResult
      const events = await readTimelines(nodes, start_t, end_t)
      const elections = events.filter((e) => e.name === 'elected')
      const false_failovers = elections.filter(
        (e) => e.t < applied.fault_t || !applied.touched.includes(e.node),
      ).length
      const detected = events.find((e) => e.name === 'server_suspected' && e.t >= applied.fault_t)
      const record: FaultRecord = {
        fault: nemesis.name,
        seed,
        output_commit: OUTPUT_COMMIT,
        acknowledged: verdict.acknowledged,
        lost: verdict.lost,
        duplicated: verdict.duplicated,
        outage_ms: verdict.outage_ms,
        false_failovers,
        one_server_after_heal_ms: healed?.ms ?? null,
        detection_ms: detected ? detected.t - applied.fault_t : null,
        elections: elections.length,
        fault_ms: applied.heal_t - applied.fault_t,
        params: applied.params,
        nodes: NODES,
        commit: gitCommit(),
        ...(verdict.lost_acked_before_fault_ms !== undefined
          ? { lost_acked_before_fault_ms: verdict.lost_acked_before_fault_ms }
          : {}),
      }
      const problems = [
        verdict.live_mailbox === null ? 'no single mailbox holds the marker' : null,
        (verdict.duplicated ?? 0) > 0 ? `${verdict.duplicated} duplicated` : null,
        healed === null ? 'no single server after the heal' : null,
        applied.pure_partition && (verdict.lost ?? 0) > 0
          ? `${verdict.lost} acknowledged mails lost in a partition`
          : null,
        OUTPUT_COMMIT !== 'off' && (verdict.lost ?? 0) > 0
          ? `${verdict.lost} lost with output commit on`
          : null,
      ].filter((p): p is string => p !== null)
      log(`${nemesis.name} seed ${seed}: ${JSON.stringify(record)}`)
      printTimeline(
        notes,
        events.map((e) => ({ t: e.t, who: `n${e.node}`, what: e.what })),
        applied.fault_t,
      )
      if (problems.length > 0) {
        failed += 1
        log(`FAILED ${nemesis.name} seed ${seed}: ${problems.join('; ')}; logs kept in ${dir}`)
        log(`replay: ${replayLine(seed, nemesis.name)}`)
      }
      runs.push(record)
    }
  }
  await stopAll()
  const load_after = await loadavg()
  if (!values['no-results']) {
    const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], {
      cwd: ROOT,
      encoding: 'utf8',
    }).trim()
    const json: FaultsJson = {
      commit,
      date: new Date().toISOString(),
      command: `npm run faults -- ${process.argv.slice(2).join(' ')}`.trim(),
      nodes: NODES,
      seed: SEED,
      load_before,
      load_after,
      runs,
      scale: {},
    }
    await writeFaultResults(json, values.merge)
  }
  log(
    `${runs.length} runs, ${failed} failed; load ${load_before.join(' ')} before, ${load_after.join(' ')} after`,
  )
  process.stdout.write(
    `${JSON.stringify({ summary: { runs: runs.length, failed, seed: SEED, load_before, load_after } })}\n`,
  )
  await unmountSmallDisks(nodes) // their logs stay in the directory with --keep or a failure
  if (failed === 0 && !values.keep) await rm(dir, { recursive: true, force: true })
  return failed === 0 ? 0 : 1
}

main().then(
  (code) => process.exit(code),
  async (error: Error) => {
    log(`error: ${error.stack ?? error.message}`)
    await stopAll()
    process.exit(2)
  },
)
