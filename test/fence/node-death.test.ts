import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { stringify } from 'yaml'
import { sendMail } from '../../examples/mail/smtp-client.ts'
import { freePort } from '../../src/util/free-port.ts'
import { SERVICE } from '../drivers/fixtures.ts'
import {
  mailLoad,
  portOpen,
  processTree,
  remnants,
  type StandIn,
  startStandIn,
  waitRecord,
  waitServiceGone,
} from './remnants.ts'
import { answering, fenceScratch } from './scratch.ts'

const MAIL = fileURLToPath(new URL('../../examples/mail', import.meta.url))
/** Generous: the bound itself (kill to gone) is measured in bench/fence.ts, not asserted here. */
const GONE_TIMEOUT_MS = 5000

const { stand_ins, cleanups, tempDir } = fenceScratch('sustain-fence-')

/** A service made of the driver tests' bash script, in a mode that forks and detaches. */
async function scriptService(dir: string, mode: string): Promise<string> {
  const service_dir = join(dir, 'service-dir')
  await mkdir(service_dir)
  await writeFile(join(service_dir, 'service.sh'), SERVICE)
  await chmod(join(service_dir, 'service.sh'), 0o755)
  const manifest = {
    version: 1,
    name: 'script',
    type: 'type1',
    command: ['./service.sh'],
    env: { SERVICE_MODE: mode },
  }
  await writeFile(join(service_dir, 'sustain-service.yaml'), stringify(manifest))
  return service_dir
}

async function waitLines(path: string, count: number): Promise<number[]> {
  for (let i = 0; i < 1000; i++) {
    const pids = (await readFile(path, 'utf8').catch(() => '')).split('\n').filter(Boolean).map(Number)
    if (pids.length >= count) return pids
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  throw new Error(`${path} never had ${count} lines`)
}

function kill(stand_in: StandIn, scope: 'pid' | 'group'): void {
  process.kill(scope === 'pid' ? stand_in.child.pid! : -stand_in.child.pid!, 'SIGKILL')
}

describe('a service never outlives its node (process driver)', () => {
  for (const scope of ['pid', 'group'] as const) {
    it(`SIGKILL of the node's ${scope}: a service that forked, setsid'd and double-forked ends with it`, async () => {
      const dir = await tempDir()
      const service_dir = await scriptService(dir, 'escape')
      const data_dir = join(dir, 'data')
      const stand_in = await startStandIn(service_dir, data_dir, await freePort(), stand_ins)
      const escaped = await waitLines(join(data_dir, 'service', 'state', 'children'), 2)
      const tree = processTree(stand_in.leader)
      // The escapees really left the service's process group (what a group signal would have missed).
      for (const pid of escaped) {
        const stat = await readFile(`/proc/${pid}/stat`, 'latin1')
        expect(Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2])).not.toBe(stand_in.leader)
        expect(tree.has(pid)).toBe(true)
      }
      const exited = once(stand_in.child, 'exit')
      const killed_at = performance.now()
      kill(stand_in, scope)
      await exited
      await waitServiceGone(tree, join(data_dir, 'service'), 1, killed_at, GONE_TIMEOUT_MS)
      expect(remnants(tree, join(data_dir, 'service'))).toEqual([])
    })

    it(`SIGKILL of the node's ${scope} while a client sends: the mail service is gone, its port closed`, async () => {
      const dir = await tempDir()
      const data_dir = join(dir, 'data')
      const port = await freePort()
      const stand_in = await startStandIn(MAIL, data_dir, port, stand_ins)
      const load = mailLoad(port)
      cleanups.push(load.stop)
      while (load.counts.acked < 5) await new Promise((resolve) => setTimeout(resolve, 10))
      const tree = processTree(stand_in.leader)
      expect(tree.size).toBeGreaterThanOrEqual(3) // setpriv/unshare, the namespace's init, node
      const killed_at = performance.now()
      kill(stand_in, scope)
      await waitServiceGone(tree, join(data_dir, 'service'), port, killed_at, GONE_TIMEOUT_MS)
      const acked = load.counts.acked
      await new Promise((resolve) => setTimeout(resolve, 200))
      expect(load.counts.acked).toBe(acked) // nothing acknowledged any more
      expect(await portOpen(port)).toBe(false)
    })
  }
})

/** The example mail service started by hand on a node's state directory, as a leftover would be. */
async function handStartedMail(data_dir: string, port: number): Promise<ChildProcess> {
  const state_dir = join(data_dir, 'service', 'state')
  await mkdir(state_dir, { recursive: true })
  const child = spawn(process.execPath, ['run.mjs'], {
    cwd: MAIL,
    env: { ...process.env, SUSTAIN_PORT: String(port), SUSTAIN_STATE_DIR: state_dir },
    stdio: 'ignore',
    detached: true,
  })
  cleanups.push(async () => {
    if (child.exitCode !== null || child.signalCode !== null) return
    const exited = once(child, 'exit')
    child.kill('SIGKILL')
    await exited
  })
  for (let i = 0; i < 1000 && !(await portOpen(port)); i++)
    await new Promise((resolve) => setTimeout(resolve, 10))
  expect(await portOpen(port)).toBe(true)
  return child
}

async function startTicks(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'latin1')
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19])
}

describe('a node that restarts finds what an earlier run left', () => {
  for (const found_by of ['record', 'port'] as const) {
    it(`stops a mail service left running on its state directory (found by its ${found_by}) before serving`, async () => {
      const dir = await tempDir()
      const data_dir = join(dir, 'data')
      const port = await freePort()
      const leftover = await handStartedMail(data_dir, port)
      const gone = once(leftover, 'exit')
      if (found_by === 'record') {
        // The record a node writes when it starts its service (a leader named by pid and start time).
        const record = {
          version: 1,
          pid: leftover.pid,
          start_ticks: await startTicks(leftover.pid!),
          boot_id: (await readFile('/proc/sys/kernel/random/boot_id', 'utf8')).trim(),
          node_pid: 1,
          started_at: new Date().toISOString(),
        }
        await writeFile(join(data_dir, 'service', '.state.service.json'), JSON.stringify(record))
      }
      const stand_in = await startStandIn(MAIL, data_dir, port, stand_ins)
      // Gone before the node started its own copy (the stand-in reports only after start()).
      expect(leftover.signalCode ?? (await gone)[1]).toBe('SIGKILL')
      // The stand-in reports on stdout, its log comes on stderr: wait for the log's record of the start.
      await waitRecord(stand_in, (r) => r['event'] === 'service_started', 10_000, 'service started')
      const found = stand_in.records.find((r) => r['event'] === 'leftover_found')
      expect(found).toMatchObject({ pid: leftover.pid, via: found_by })
      const found_at = stand_in.records.indexOf(found!)
      const started_at = stand_in.records.findIndex((r) => r['event'] === 'service_started')
      expect(found_at).toBeLessThan(started_at)
      // The node's own copy serves on the port now.
      await waitRecord(stand_in, answering, 10_000, 'answering')
      await expect(
        sendMail({ port, from: 'a@example.org', to: ['bob@example.org'], subject: 'after', text: 'x' }),
      ).resolves.toMatchObject({ response: expect.stringMatching(/^250/) })
    })
  }

  it('leaves alone a process whose pid the record names but whose start time differs (a reused pid)', async () => {
    const dir = await tempDir()
    const data_dir = join(dir, 'data')
    await mkdir(join(data_dir, 'service', 'state'), { recursive: true })
    const bystander = spawn('sleep', ['1000'], { stdio: 'ignore', detached: true })
    cleanups.push(async () => {
      const exited = once(bystander, 'exit')
      bystander.kill('SIGKILL')
      await exited
    })
    await once(bystander, 'spawn')
    const record = {
      version: 1,
      pid: bystander.pid,
      start_ticks: (await startTicks(bystander.pid!)) - 1,
      boot_id: (await readFile('/proc/sys/kernel/random/boot_id', 'utf8')).trim(),
      node_pid: 1,
      started_at: new Date().toISOString(),
    }
    await writeFile(join(data_dir, 'service', '.state.service.json'), JSON.stringify(record))
    const stand_in = await startStandIn(MAIL, data_dir, await freePort(), stand_ins)
    expect(stand_in.records.some((r) => r['event'] === 'leftover_found')).toBe(false)
    expect(stand_in.records.some((r) => r['event'] === 'service_record_stale')).toBe(true)
    expect(bystander.exitCode === null && bystander.signalCode === null).toBe(true)
  })

  it('stops a process that holds the state lock before serving', async () => {
    const dir = await tempDir()
    const data_dir = join(dir, 'data')
    await mkdir(join(data_dir, 'service', 'state'), { recursive: true })
    const lock = join(data_dir, 'service', '.state.lock')
    const holder = spawn('flock', ['-x', lock, 'sleep', '1000'], { stdio: 'ignore', detached: true })
    cleanups.push(async () => {
      if (holder.exitCode === null && holder.signalCode === null) {
        const exited = once(holder, 'exit')
        process.kill(-holder.pid!, 'SIGKILL')
        await exited
      }
    })
    // The lock is held once flock runs its command (a child of flock).
    for (let i = 0; i < 500; i++) {
      const tree = processTree(holder.pid!)
      if (tree.size >= 2) break
      await new Promise((resolve) => setTimeout(resolve, 10))
    }
    const port = await freePort()
    const stand_in = await startStandIn(MAIL, data_dir, port, stand_ins)
    const found = stand_in.records.filter((r) => r['event'] === 'leftover_found')
    expect(found.map((r) => r['via'])).toContain('lock')
    expect(
      holder.exitCode !== null || holder.signalCode !== null || (await once(holder, 'exit')),
    ).toBeTruthy()
    await waitRecord(stand_in, answering, 10_000, 'answering')
    expect(await portOpen(port)).toBe(true)
  })
})
