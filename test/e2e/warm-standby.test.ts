import { describe, expect, it } from 'vitest'
import { sendMail } from '../../examples/mail/smtp-client.ts'
import { LocalFederation, type LogRecord } from '../../src/demo/local-federation.ts'
import { controlRequest } from '../../src/runtime/control-client.ts'
import { nodePaths } from '../../src/runtime/paths.ts'
import { localFederations } from './fixtures.ts'

const startFederation = localFederations()

const since =
  (name: string, after_ms: number, extra: (r: LogRecord) => boolean = () => true) =>
  (r: LogRecord) =>
    r.event === name && Number(r.time) >= after_ms && extra(r)

describe('warm standby end to end (real node processes, real mail service, loopback testnet)', () => {
  it('the top candidate decodes the newest snapshot ahead; the failover to it swaps that copy in', async () => {
    // Snapshots only when asked (a 60 s interval): the test knows which one the failover restores.
    const fed = await startFederation({ nodes: 3, snapshot_interval_ms: 60_000, standby: 'warm' })
    const server = await fed.server(60_000)
    await server.waitFor((r) => r.event === 'driver' && r.kind === 'answering', 30_000, 'answering')
    for (let n = 1; n <= 3; n++)
      await sendMail({
        port: server.port,
        from: 'a@example.org',
        to: ['alice@example.org'],
        subject: `warm-${n}`,
        text: `warm-mail-${n}\n`,
      })
    const asked_ms = Date.now()
    await controlRequest(nodePaths(server.data_dir).socket, { cmd: 'snapshot' }, () => {})
    const taken = await server.waitFor(since('snapshot_taken', asked_ms), 20_000, 'snapshot taken')
    // Node i has priority (3 - i) * 10: the top candidate is the surviving node of lowest index.
    const others = fed.nodes.filter((n) => n !== server).sort((a, b) => a.index - b.index)
    const [top, second] = others as [(typeof others)[0], (typeof others)[0]]
    const warmed = await top.waitFor(
      since('standby_warmed', asked_ms, (r) => r.id === taken.id),
      30_000,
      'warm copy of the snapshot',
    )
    expect(Number(warmed.bytes)).toBeGreaterThan(0)
    await second.waitFor(
      since('snapshot_collected', asked_ms, (r) => r.id === taken.id),
      30_000,
      'collected',
    )
    // The second candidate collects but does not decode: only the one an election picks pays for it.
    expect(second.records.some(since('standby_warmed', 0))).toBe(false)

    const killed_ms = Date.now()
    server.signal('SIGKILL')
    const successor = await fed.server(30_000)
    expect(successor).toBe(top)
    const used = await top.waitFor(since('standby_used', killed_ms), 20_000, 'warm copy used')
    expect(used.id).toBe(taken.id)
    const materialised = await top.waitFor(since('state_materialised', killed_ms), 10_000, 'materialised')
    expect(materialised.warm).toBe(true)
    expect(top.records.some(since('standby_not_used', killed_ms))).toBe(false)
    const mbox = await top.mailbox('alice')
    for (let n = 1; n <= 3; n++) expect(mbox).toContain(`warm-mail-${n}`)
    await LocalFederation.first([top], since('service_answering', killed_ms), 20_000, 'answering')
  })
})
