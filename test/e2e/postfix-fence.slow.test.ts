import { execFile } from 'node:child_process'
import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'
import type { LogRecord } from '../../src/demo/local-federation.ts'
import { nodePaths } from '../../src/runtime/paths.ts'
import { killNodeOnly, mailLoad } from '../fence/remnants.ts'
import { localFederations } from './fixtures.ts'

const run = promisify(execFile)
const POSTFIX = new URL('../../examples/postfix', import.meta.url).pathname

/** Subjects in an mbox, read with Python's mailbox module (not Sustain's parser); [] if none yet. */
async function subjectsByPython(path: string): Promise<string[]> {
  const script =
    'import mailbox,sys,json,os; print(json.dumps([m["subject"] for m in mailbox.mbox(sys.argv[1])] if os.path.exists(sys.argv[1]) else []))'
  const { stdout } = await run('python3', ['-c', script, path])
  return JSON.parse(stdout) as string[]
}

/** Subjects of the messages in a Postfix queue (every queue directory, read raw). */
async function queuedSubjects(state_dir: string): Promise<string[]> {
  const queue = join(state_dir, 'postfix', 'queue')
  const found: string[] = []
  for (const dir of ['maildrop', 'incoming', 'active', 'deferred', 'hold']) {
    const files = await readdir(join(queue, dir), { recursive: true }).catch(() => [] as string[])
    for (const name of files) {
      const text = await readFile(join(queue, dir, name), 'latin1').catch(() => '')
      for (const match of text.matchAll(/Subject: (m-\d+)/g)) found.push(match[1]!)
    }
  }
  return found
}

const startFederation = localFederations()

describe('real Postfix on three nodes: the server node process is SIGKILLed alone', () => {
  it('its Postfix ends, its port closes, a candidate restores; every mail acknowledged before the restored snapshot is there', async () => {
    const fed = await startFederation({ nodes: 3, service_dir: POSTFIX, snapshot_interval_ms: 1000 })
    const server = await fed.server(120_000)
    await server.waitFor((r) => r.event === 'driver' && r.kind === 'answering', 60_000, 'answering')
    const load = mailLoad(server.port)
    try {
      while (load.counts.acked < 20) await new Promise((resolve) => setTimeout(resolve, 20))
      // A snapshot captured after some of the load's mail, held by the candidates, before the kill.
      const some_acked_ms = load.acked.at(-1)!.at_ms
      const taken_after = await server.waitFor(
        (r) => r.event === 'snapshot_taken' && Number(r.time) - Number(r.total_ms) >= some_acked_ms,
        30_000,
        'a snapshot after the first mails',
      )
      await Promise.all(
        fed.nodes
          .filter((n) => n !== server)
          .map((n) =>
            n.waitFor(
              (r) => r.event === 'snapshot_collected' && r.id === taken_after.id,
              30_000,
              'replication',
            ),
          ),
      )
      const killed_ms = await killNodeOnly(server)
      const acked_by_dead = load.acked.length
      await load.stop()
      expect(load.acked.length).toBe(acked_by_dead) // nothing acknowledged once its service was gone

      const successor = await fed.server(60_000)
      expect(successor).not.toBe(server)
      const restored = (await successor.waitFor(
        (r: LogRecord) => r.event === 'restored' && Number(r.time) >= killed_ms,
        30_000,
        'restored',
      )) as LogRecord
      // When the restored snapshot was captured, from the dead server's own log.
      const taken = server.records.find((r) => r.event === 'snapshot_taken' && r.id === restored.snapshot)
      expect(taken).toBeDefined()
      const captured_ms = Number(taken!.time) - Number(taken!.total_ms)
      const must_survive = load.acked.filter((m) => m.at_ms < captured_ms).map((m) => m.subject)
      expect(must_survive.length).toBeGreaterThan(0)
      // In the successor's mailbox (read by Python) or still in its restored Postfix queue (queue files
      // hold the message text): queued mail is not lost (its delivery after a restore may lag).
      const state = nodePaths(successor.data_dir).service_state
      const spool = join(state, 'spool', 'alice')
      let missing: string[] = must_survive
      for (let i = 0; i < 100 && missing.length > 0; i++) {
        const present = new Set([...(await subjectsByPython(spool)), ...(await queuedSubjects(state))])
        missing = must_survive.filter((subject) => !present.has(subject))
        if (missing.length > 0) await new Promise((resolve) => setTimeout(resolve, 100))
      }
      expect(missing).toEqual([])
    } finally {
      await load.stop()
    }
  })
})
