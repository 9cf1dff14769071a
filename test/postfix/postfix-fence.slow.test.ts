import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { describe, expect, it } from 'vitest'
import { sendMail } from '../../examples/mail/smtp-client.ts'
import { freePort } from '../../src/util/free-port.ts'
import {
  mailLoad,
  portOpen,
  processTree,
  startStandIn,
  waitRecord,
  waitServiceGone,
} from '../fence/remnants.ts'
import { answering, fenceScratch } from '../fence/scratch.ts'

const SERVICE_DIR = resolve(import.meta.dirname, '../../examples/postfix')
const GONE_TIMEOUT_MS = 5000

// 0711: Postfix's own users must reach the state directory.
const { stand_ins, cleanups, tempDir } = fenceScratch('sustain-postfix-fence-', 0o711)

function comm(pid: number): Promise<string> {
  return readFile(`/proc/${pid}/comm`, 'utf8').then(
    (text) => text.trim(),
    () => '',
  )
}

describe('real Postfix never outlives its node', () => {
  for (const scope of ['pid', 'group'] as const) {
    it(`SIGKILL of the node's ${scope} while a client sends: master and every daemon end, the port closes`, async () => {
      const dir = await tempDir()
      const data_dir = join(dir, 'data')
      const port = await freePort()
      const stand_in = await startStandIn(SERVICE_DIR, data_dir, port, stand_ins)
      await waitRecord(stand_in, answering, 30_000, 'answering')
      const load = mailLoad(port)
      cleanups.push(load.stop)
      while (load.counts.acked < 5) await new Promise((resolve) => setTimeout(resolve, 10))
      const tree = processTree(stand_in.leader)
      const names = await Promise.all([...tree.keys()].map(comm))
      // Postfix's master runs as init of a PID namespace of its own (examples/postfix/start), with its daemons.
      expect(names).toContain('master')
      expect(names.filter((name) => ['smtpd', 'qmgr', 'pickup'].includes(name)).length).toBeGreaterThan(0)
      const killed_at = performance.now()
      process.kill(scope === 'pid' ? stand_in.child.pid! : -stand_in.child.pid!, 'SIGKILL')
      await waitServiceGone(tree, join(data_dir, 'service'), port, killed_at, GONE_TIMEOUT_MS)
      const acked = load.counts.acked
      await new Promise((resolve) => setTimeout(resolve, 300))
      expect(load.counts.acked).toBe(acked)
      expect(await portOpen(port)).toBe(false)
    })
  }

  it('a node restarted on the data of a killed node stops the Postfix left running there before serving', async () => {
    const dir = await tempDir()
    const data_dir = join(dir, 'data')
    const state_dir = join(data_dir, 'service', 'state')
    await mkdir(state_dir, { recursive: true })
    const port = await freePort()
    // Postfix started by hand on the node's state directory, outside any node, with the node's record.
    const leftover: ChildProcess = spawn(join(SERVICE_DIR, 'start'), [], {
      cwd: SERVICE_DIR,
      env: {
        ...process.env,
        SUSTAIN_STATE_DIR: state_dir,
        SUSTAIN_PORT: String(port),
        MAIL_DOMAIN: 'example.org',
      },
      stdio: 'ignore',
      detached: true,
    })
    cleanups.push(async () => {
      if (leftover.exitCode !== null || leftover.signalCode !== null) return
      const exited = once(leftover, 'exit')
      process.kill(-leftover.pid!, 'SIGKILL')
      await exited
    })
    for (let i = 0; i < 3000 && !(await portOpen(port)); i++) await new Promise((r) => setTimeout(r, 10))
    expect(await portOpen(port)).toBe(true)
    const tree = processTree(leftover.pid!)
    const stat = await readFile(`/proc/${leftover.pid}/stat`, 'latin1')
    await writeFile(
      join(data_dir, 'service', '.state.service.json'),
      JSON.stringify({
        version: 1,
        pid: leftover.pid,
        start_ticks: Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]),
        boot_id: (await readFile('/proc/sys/kernel/random/boot_id', 'utf8')).trim(),
        node_pid: 1,
        started_at: new Date().toISOString(),
      }),
    )
    const stand_in = await startStandIn(SERVICE_DIR, data_dir, port, stand_ins)
    const found = stand_in.records.find((r) => r['event'] === 'leftover_found')
    expect(found).toMatchObject({ pid: leftover.pid, via: 'record' })
    // Every process of the hand-started Postfix is gone (checked by pid and start time: the node's own
    // Postfix now runs on the same directory).
    for (const [pid, start] of tree) {
      const now = await readFile(`/proc/${pid}/stat`, 'latin1').catch(() => '')
      const fields = now.slice(now.lastIndexOf(')') + 2).split(' ')
      expect(now === '' || fields[19] !== start || fields[0] === 'Z').toBe(true)
    }
    await waitRecord(stand_in, answering, 30_000, 'answering')
    await expect(
      sendMail({ port, from: 'a@example.org', to: ['bob@example.org'], subject: 'after', text: 'x' }),
    ).resolves.toMatchObject({ response: expect.stringMatching(/^250/) })
  })
})
