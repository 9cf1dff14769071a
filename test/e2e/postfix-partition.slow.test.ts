import { execFile } from 'node:child_process'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'
import { sendMail } from '../../examples/mail/smtp-client.ts'
import { LocalFederation, type LogRecord } from '../../src/demo/local-federation.ts'
import { nodePaths } from '../../src/runtime/paths.ts'
import { requireTools } from '../system/requirements.ts'
import { localFederations } from './fixtures.ts'

const run = promisify(execFile)
const POSTFIX = new URL('../../examples/postfix', import.meta.url).pathname

/** Subjects of every message in an mbox, read with Python's mailbox module (not Sustain's parser). */
async function subjectsByPython(path: string): Promise<string[]> {
  const script =
    'import mailbox,sys,json; print(json.dumps([m["subject"] for m in mailbox.mbox(sys.argv[1])]))'
  const { stdout } = await run('python3', ['-c', script, path])
  return JSON.parse(stdout) as string[]
}

const since = (name: string, t: number) => (r: LogRecord) => r.event === name && Number(r.time) >= t

const startFederation = localFederations()

describe('real Postfix on three nodes: partition, both sides serve, heal, merge', () => {
  it('after the merge one server remains and every acknowledged message is in its mailbox exactly once', async () => {
    requireTools('postfix', 'python3')
    const fed = await startFederation({ nodes: 3, service_dir: POSTFIX, snapshot_interval_ms: 1000 })
    const server = await fed.server(120_000)
    const acked: string[] = []
    const mail = async (port: number, subject: string) => {
      await sendMail({
        port,
        from: 'sender@example.org',
        to: ['alice@example.org'],
        subject,
        text: `${subject}\n`,
      })
      acked.push(subject)
    }
    for (let i = 1; i <= 5; i++) await mail(server.port, `before-${i}`)
    const taken = server.records.filter((r) => r.event === 'snapshot_taken').length
    await server.waitFor(
      () => server.records.filter((r) => r.event === 'snapshot_taken').length >= taken + 2,
      30_000,
      'snapshots of the first mails',
    )

    // Partition: the server loses every overlay connection for 25 s; both sides go on serving.
    const cut_ms = Date.now()
    await server.isolate(25_000)
    const { node: successor } = await LocalFederation.first(
      fed.nodes.filter((n) => n !== server),
      since('service_answering', cut_ms),
      60_000,
      'a server on the other side',
    )
    for (let i = 1; i <= 5; i++) await mail(server.port, `old-side-${i}`)
    for (let i = 1; i <= 5; i++) await mail(successor.port, `new-side-${i}`)

    // Heal: by priority (the default) the lower-priority server merges into the higher through the mbox
    // helper. Node i has priority (3 - i) * 10, so the lower index wins.
    const [winner, loser] = server.index < successor.index ? [server, successor] : [successor, server]
    await loser.waitFor(since('merge_finished', cut_ms), 120_000, 'the merge')
    await winner.waitFor(since('merge_applied', cut_ms), 10_000, 'the merge applied on the winner')
    const mbox = join(nodePaths(winner.data_dir).service_state, 'spool', 'alice')
    const subjects = await subjectsByPython(mbox)
    const counts = new Map<string, number>()
    for (const s of subjects) counts.set(s, (counts.get(s) ?? 0) + 1)
    for (const subject of acked) expect([subject, counts.get(subject)]).toEqual([subject, 1])
    expect(subjects.length).toBe(acked.length)
    const statuses = await Promise.all(fed.nodes.map((n) => n.status()))
    expect(statuses.filter((s) => s?.node.role === 'server').map((s) => s?.node.name)).toEqual([winner.name])
  }, 300_000)
})
