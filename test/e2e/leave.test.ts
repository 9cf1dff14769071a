import { describe, expect, it } from 'vitest'
import { LocalFederation, type LocalNode } from '../../src/demo/local-federation.ts'
import { localFederations } from './fixtures.ts'
import { leavesInARow, loadedFederation } from './leave-checks.ts'
import { claimsBetween, leaveCli, lostAcknowledged, serverOverlaps, sleep } from './leave-run.ts'

const startFederation = localFederations()

describe('leave under load (real node processes, mail flowing to any address)', () => {
  it('3 planned leaves in a row, each leaver rejoining: every leave exits 0, one claim each, no two servers, no acknowledged mail lost', async () => {
    await leavesInARow(startFederation, 3)
  }, 240_000)

  it('the successor killed in the middle of its restore: the leaving server names the next, one server at the end, nothing lost', async () => {
    const { fed, load } = await loadedFederation(startFederation)
    const server = await fed.server(60_000)
    const others = fed.nodes.filter((n) => n !== server)
    const started_ms = Date.now()
    const leaving = leaveCli(server)
    // Killed at its claim: before it restored (its timeline says which came first).
    const { node: successor } = await LocalFederation.first(
      others,
      (r) => r.event === 'elected' && Number(r.time) >= started_ms,
      60_000,
      'the successor claims',
    )
    successor.signal('SIGKILL')
    const killed_ms = Date.now()
    const left = await leaving
    await load.stop().catch(() => {})
    const restored_before_kill = successor.records.some(
      (r) => r.event === 'restored' && Number(r.time) >= started_ms && Number(r.time) < killed_ms,
    )
    expect(restored_before_kill).toBe(false)
    expect(left).toMatchObject({ code: 0 })
    const next = await fed.server(60_000)
    expect(next).not.toBe(successor)
    expect(next).not.toBe(server)
    const claims = claimsBetween(fed, started_ms, Date.now())
    if (claims[0] !== successor.name || claims.at(-1) !== next.name)
      console.log(
        'DIAG claims',
        claims,
        fed.nodes.map((n) =>
          n.records
            .filter((r) => Number(r.time) >= started_ms)
            .filter((r) => /elected|restor|handover|claim|role|merge/.test(String(r.event)))
            .map(
              (r) =>
                `${n.name} ${Number(r.time) - started_ms} ${r.event} ${String(r['reason'] ?? r['to'] ?? '')}`,
            )
            .join(' | '),
        ),
      )
    expect(claims[0]).toBe(successor.name)
    expect(claims.at(-1)).toBe(next.name)
    const statuses = await Promise.all(fed.nodes.map((n) => n.status()))
    expect(statuses.filter((s) => s?.node.role === 'server').map((s) => s?.node.name)).toEqual([next.name])
    expect(serverOverlaps(fed, Date.now(), new Map<LocalNode, number[]>([[successor, [killed_ms]]]))).toEqual(
      [],
    )
    const lost = await lostAcknowledged(next, load)
    if (lost.length > 0)
      console.log(
        'DIAG lost',
        lost.map((n) => ({
          n,
          acked_after_start_ms: load.acked.get(n)! - started_ms,
          kill_ms: killed_ms - started_ms,
        })),
        successor.records
          .filter((r) => Number(r.time) >= started_ms)
          .map((r) => `${Number(r.time) - started_ms} ${r.event}`)
          .join(' | '),
      )
    const pick = (n: LocalNode) =>
      n.records
        .filter((r) => Number(r.time) >= started_ms - 1500)
        .filter((r) => /snapshot|elected|restored|handover|service|leave|role|claim/.test(String(r.event)))
        .map(
          (r) =>
            `${Number(r.time) - started_ms} ${r.event} ${String(r['id'] ?? r['snapshot'] ?? r['to'] ?? r['reason'] ?? '').slice(-12)}`,
        )
        .join(' | ')
    if (lost.length > 0)
      console.log('DIAG server', server.name, pick(server), '\nDIAG next', next.name, pick(next))
    expect(lost).toEqual([])
  }, 180_000)

  it('leave on a server nobody can take over from exits non-zero and says why', async () => {
    const fed = await startFederation({ nodes: 1, snapshot_interval_ms: 500 })
    const server = await fed.server(60_000)
    await sleep(100)
    const left = await leaveCli(server)
    expect(left.code).not.toBe(0)
    expect(left.output).toMatch(/leave did not hand over: no candidate could take over/)
  }, 120_000)
})
