import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { readdirSync, readFileSync, readlinkSync } from 'node:fs'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { afterEach, describe, expect, it } from 'vitest'
import type { FaultRecord } from '../../bench/faults/faults-results.ts'
import { requireTools } from '../system/requirements.ts'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const started: ChildProcess[] = []

/** `npm run faults` as CI runs it: bench/faults/in-lab.sh, then the lab as PID 1 of its namespaces. */
function lab(args: string[], env: NodeJS.ProcessEnv = process.env): ChildProcess {
  const child = spawn(
    'bash',
    ['bench/faults/in-lab.sh', process.execPath, '--import', 'tsx', 'bench/faults/main.ts', ...args],
    {
      cwd: ROOT,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  )
  started.push(child)
  return child
}

afterEach(async () => {
  // SIGKILL of unshare ends its child (--kill-child), and with the namespace's PID 1 every process in it.
  for (const child of started.splice(0)) {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL')
      await once(child, 'exit')
    }
  }
})

/** Every line of a child's stdout, and its exit code. */
async function lines(child: ChildProcess, onLine: (line: string) => void = () => {}): Promise<number | null> {
  const reader = createInterface({ input: child.stdout! })
  reader.on('line', onLine)
  let stderr = ''
  child.stderr!.on('data', (d: Buffer) => {
    stderr += d.toString()
  })
  const [code] = (await once(child, 'exit')) as [number | null]
  if (code !== 0 && stderr !== '') process.stderr.write(stderr.slice(-4000))
  return code
}

/** Processes (by PID) whose PID namespace is `ns` (a /proc/PID/ns/pid link text). */
function inPidNamespace(ns: string): number[] {
  return readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name))
    .filter((pid) => {
      try {
        return readlinkSync(`/proc/${pid}/ns/pid`) === ns
      } catch {
        return false // gone meanwhile
      }
    })
    .map(Number)
}

/** The PID of unshare's child (the lab's PID 1, seen from here). */
function labInit(unshare_pid: number): number | null {
  const text = readFileSync(`/proc/${unshare_pid}/task/${unshare_pid}/children`, 'utf8').trim()
  return text === '' ? null : Number(text.split(/\s+/)[0])
}

describe('the fault lab (npm run faults), network namespaces on a bridge', () => {
  it('a partition of the server by packet filter: nothing acknowledged lost or duplicated, one server after the heal', async () => {
    requireTools('ip', 'iptables', 'python3', 'unshare')
    const records: FaultRecord[] = []
    const child = lab(['--quick', '--only', 'partition-server', '--runs', '1', '--seed', '7', '--no-results'])
    const code = await lines(child, (line) => {
      const match = /^\[faults [^\]]*\] partition-server seed \d+: (\{.*\})$/.exec(line)
      if (match) records.push(JSON.parse(match[1]!) as FaultRecord)
    })
    expect(records).toHaveLength(1)
    const [run] = records
    expect(run!.acknowledged).toBeGreaterThan(0)
    expect(run!.duplicated).toBe(0)
    expect(run!.lost).toBe(0)
    expect(run!.one_server_after_heal_ms).not.toBeNull()
    expect(run!.elections).toBeGreaterThan(0) // the majority side did elect: the partition was real
    expect(code).toBe(0)
  })

  it('output commit 1, a partition then a SIGKILL of the merge winner: nothing acknowledged lost (the winner continues in a new term)', async () => {
    requireTools('ip', 'iptables', 'python3', 'unshare')
    const records: FaultRecord[] = []
    // Keys from each run's timeline (printed after its record): who won the merge, what the kill restored.
    const winners: string[] = []
    const restored_writers: string[] = []
    // The seed with which the lab first found the loss (3 of 29 mails, ARCHITECTURE.md "Partition heal").
    const args = ['--quick', '--only', 'partition-server,kill-server', '--runs', '1', '--seed', '621230']
    const child = lab([...args, '--output-commit', '1', '--no-results'])
    const code = await lines(child, (line) => {
      const match = /^\[faults [^\]]*\] [a-z-]+ seed \d+: (\{.*\})$/.exec(line)
      if (match) records.push(JSON.parse(match[1]!) as FaultRecord)
      const winner = /merge_started .*"winner":"([0-9a-f]{64})"/.exec(line)
      if (winner && records.length === 1) winners.push(winner[1]!)
      const restored = / restored .*"snapshot":"([0-9a-f]{64}):/.exec(line)
      if (restored && records.length === 2) restored_writers.push(restored[1]!)
    })
    expect(records.map((r) => r.fault)).toEqual(['partition-server', 'kill-server'])
    // The killed server had won the merge and served since: the failover restores its merged state, not
    // the loser's last snapshot from before the merge (which a term-first ranking once put above it; the
    // mails lost then depend on timing, so the restored writer is checked too).
    expect(new Set(winners).size).toBe(1)
    expect(restored_writers.length).toBeGreaterThan(0)
    for (const writer of restored_writers) expect(writer).toBe(winners[0])
    for (const run of records) {
      expect(run.acknowledged).toBeGreaterThan(0)
      expect(run.lost).toBe(0)
      expect(run.duplicated).toBe(0)
    }
    expect(code).toBe(0)
  })

  it('a corrupted blob on the heir, then the server killed (output commit on): the bad blob is refused by its hash and collected again, nothing acknowledged lost', async () => {
    requireTools('ip', 'iptables', 'python3', 'unshare')
    const records: FaultRecord[] = []
    const timeline: string[] = []
    const child = lab([
      '--quick',
      '--only',
      'corrupt-block',
      '--runs',
      '1',
      '--seed',
      '41',
      '--output-commit',
      '1',
      '--no-results',
    ])
    const out: string[] = []
    const code = await lines(child, (line) => {
      out.push(line)
      const match = /^\[faults [^\]]*\] corrupt-block seed \d+: (\{.*\})$/.exec(line)
      if (match) records.push(JSON.parse(match[1]!) as FaultRecord)
      else if (/^\s+-?\d+\.\d+ s /.test(line)) timeline.push(line)
    })
    if (records.length !== 1) process.stderr.write(`${out.slice(-40).join('\n')}\n`)
    expect(records).toHaveLength(1)
    const [run] = records
    expect(run!.acknowledged).toBeGreaterThan(0)
    expect(run!.lost).toBe(0)
    expect(run!.duplicated).toBe(0)
    expect(run!.one_server_after_heal_ms).not.toBeNull()
    // The heir found the damage itself (the blob's hash) and collected the snapshot again from a holder.
    const heir = String((run!.params as Record<string, unknown>)['corrupted_on'])
    expect(timeline.some((l) => l.includes(` ${heir} `) && / snapshot_repaired /.test(l))).toBe(true)
    expect(code).toBe(0)
  })

  it('refuses to start in a namespace that has a route', async () => {
    requireTools('ip', 'unshare')
    // A namespace of its own with one route (through lo): the lab must refuse before it builds anything.
    const child = spawn(
      'unshare',
      [
        '--net',
        '--mount',
        '--propagation',
        'private',
        'bash',
        '-c',
        'ip link set lo up && ip route add 10.99.0.0/24 dev lo && exec env SUSTAIN_FAULT_LAB=1 "$@"',
        'bash',
        process.execPath,
        '--import',
        'tsx',
        'bench/faults/main.ts',
        '--quick',
        '--no-results',
      ],
      { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
    )
    started.push(child)
    let out = ''
    const code = await lines(child, (line) => {
      out += `${line}\n`
    })
    expect(out).toMatch(/refusing to start: the lab's namespace has routes out/)
    expect(out).not.toMatch(/lab up/)
    expect(code).not.toBe(0)
  })

  it('SIGTERM while the federation runs: the lab ends and no process of it is left', async () => {
    requireTools('ip', 'iptables', 'python3', 'unshare')
    const child = lab(['--quick', '--only', 'kill-server', '--runs', '1', '--seed', '3', '--no-results'])
    let ns: string | null = null
    let before: number[] = []
    const formed = new Promise<void>((resolve) => {
      createInterface({ input: child.stdout! }).on('line', (line) => {
        if (/federation formed/.test(line)) resolve()
      })
    })
    child.stderr!.resume()
    await formed
    const init = labInit(child.pid!)
    expect(init).not.toBeNull()
    ns = readlinkSync(`/proc/${init}/ns/pid`)
    before = inPidNamespace(ns)
    // The lab's PID 1, three nodes and the server's service at least.
    expect(before.length).toBeGreaterThanOrEqual(5)
    // As `timeout` or Ctrl-C would: the signal to the process group of the run.
    process.kill(child.pid!, 'SIGTERM')
    process.kill(init!, 'SIGTERM')
    const [code, signal] = (await once(child, 'exit')) as [number | null, string | null]
    expect(code === 143 || signal === 'SIGTERM').toBe(true)
    expect(inPidNamespace(ns)).toEqual([])
  })
})
