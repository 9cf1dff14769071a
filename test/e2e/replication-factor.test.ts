import { randomBytes } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { sendMail } from '../../examples/mail/smtp-client.ts'
import type { LogRecord } from '../../src/demo/local-federation.ts'
import { controlRequest } from '../../src/runtime/control-client.ts'
import { nodePaths } from '../../src/runtime/paths.ts'
import { localFederations } from './fixtures.ts'

const startFederation = localFederations()

const since =
  (name: string, after_ms: number, extra: (r: LogRecord) => boolean = () => true) =>
  (r: LogRecord) =>
    r.event === name && Number(r.time) >= after_ms && extra(r)

describe('snapshots.replication_factor (real node processes, real mail service, loopback testnet)', () => {
  it('r = 2 of 4 nodes: each blob is held by exactly 2 non-writers, none keeps a whole copy, a failover restores', async () => {
    const r = 2
    // Snapshots only when asked: the test knows which snapshot the shares and the failover are of.
    const fed = await startFederation({ nodes: 4, snapshot_interval_ms: 60_000, replication_factor: r })
    const server = await fed.server(60_000)
    await server.waitFor((e) => e.event === 'driver' && e.kind === 'answering', 30_000, 'answering')
    // Incompressible bodies of ~850 KB each, so the snapshot has several 1 MiB chunks to place.
    // Lines of 64 hex characters: short enough that no transfer encoding rewraps them.
    const body = (n: number) =>
      Array.from({ length: 13_000 }, () => randomBytes(32).toString('hex')).join('\n') + `\nrway-${n}\n`
    const bodies = [1, 2, 3, 4].map(body)
    for (const [n, text] of bodies.entries())
      await sendMail({
        port: server.port,
        from: 'a@example.org',
        to: ['alice@example.org'],
        subject: `r${n}`,
        text,
      })
    const asked_ms = Date.now()
    await controlRequest(nodePaths(server.data_dir).socket, { cmd: 'snapshot' }, () => {})
    const taken = await server.waitFor(since('snapshot_taken', asked_ms), 20_000, 'snapshot taken')
    const others = fed.nodes.filter((n) => n !== server)
    const shares = await Promise.all(
      others.map((n) =>
        n.waitFor(
          since('snapshot_share_held', asked_ms, (e) => e.id === taken.id),
          60_000,
          'share',
        ),
      ),
    )
    // Counted from every holder's own report: each blob of the snapshot on exactly r of them.
    const total = Number(shares[0]!.blobs_total)
    expect(total).toBeGreaterThan(1)
    const holders = new Map<string, number>()
    for (const share of shares) {
      expect(share.blobs_total).toBe(total)
      for (const hash of share.blobs as string[]) holders.set(hash, (holders.get(hash) ?? 0) + 1)
    }
    expect(holders.size).toBe(total)
    for (const count of holders.values()) expect(count).toBe(r)
    // A share is not a whole copy: no candidate collected the snapshot into its local store.
    for (const n of others) expect(n.records.some(since('snapshot_collected', asked_ms))).toBe(false)

    const killed_ms = Date.now()
    server.signal('SIGKILL')
    const successor = await fed.server(60_000)
    expect(successor).not.toBe(server)
    // The restore collects the blobs it lacks from the other holder of each.
    const collected = await successor.waitFor(
      since('snapshot_collected', killed_ms, (e) => e.id === taken.id),
      60_000,
      'restore collected',
    )
    expect(Number(collected.bytes)).toBeGreaterThan(0)
    await successor.waitFor(since('service_answering', killed_ms), 30_000, 'answering')
    const mbox = await successor.mailbox('alice')
    for (const text of bodies) expect(mbox).toContain(text.trim())
  })
})
