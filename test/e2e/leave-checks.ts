import { expect } from 'vitest'
import type { LocalFederation } from '../../src/demo/local-federation.ts'
import { MailLoad } from '../../src/demo/mail-load.ts'
import {
  type LeaveResult,
  leaveAndRejoin,
  lostAcknowledged,
  percentile,
  type StartFederation,
  serverOverlaps,
  sleep,
  storyBetween,
} from './leave-run.ts'

/** Four nodes (priorities 50, 40, 30, 20) serving examples/mail; a client mails every 50 ms to any address. */
export async function loadedFederation(
  start: StartFederation,
): Promise<{ fed: LocalFederation; load: MailLoad }> {
  const fed = await start({ nodes: 4, priorities: [50, 40, 30, 20], snapshot_interval_ms: 500 })
  await fed.server(60_000)
  const load = new MailLoad({ ports: fed.nodes.map((n) => n.port), interval_ms: 50 })
  load.start()
  // The leave happens under load: the client has been acknowledged before anything is done.
  for (let i = 0; i < 400 && load.acked.size < 3; i++) await sleep(25)
  if (load.acked.size < 3) throw new Error('the mail client got no acknowledgement within 10 s')
  return { fed, load }
}

function report(results: LeaveResult[]): string {
  const gaps = results.map((r) => r.gap_ms)
  return `${results.length} leaves, longest client gap per leave (ms): ${gaps.join(', ')}; p50 ${percentile(gaps, 50)}, max ${Math.max(...gaps)}`
}

/** `count` leaves in a row under load, checked: exit 0, one claim each, no two servers, nothing lost. */
export async function leavesInARow(start: StartFederation, count: number): Promise<LeaveResult[]> {
  const { fed, load } = await loadedFederation(start)
  const results: LeaveResult[] = []
  try {
    for (let i = 0; i < count; i++) {
      const t = Date.now()
      const r = await leaveAndRejoin(fed, load).catch((error: unknown) => {
        process.stderr.write(
          `leave ${i + 1}/${count} failed: ${String(error)}\n${storyBetween(fed, t - 2000, Date.now())}\n`,
        )
        throw error
      })
      results.push(r)
      process.stderr.write(
        `leave ${i + 1}/${count}: ${r.leaver} -> ${r.successor}, exit ${r.exit_code}, gap ${r.gap_ms} ms, claims ${r.claims.join('+')}, ${Date.now() - t} ms with the rejoin${r.exit_code === 0 ? '' : `; it said: ${r.output.trim()}`}\n`,
      )
      // A leave that misbehaved prints what every node did meanwhile (the CI log keeps nothing else).
      if (r.exit_code !== 0 || r.claims.length !== 1 || r.claims[0] !== r.successor)
        process.stderr.write(`${storyBetween(fed, r.from_ms - 2000, r.to_ms)}\n`)
    }
  } finally {
    await load.stop()
  }
  process.stdout.write(`${report(results)}\n`)
  for (const r of results) {
    expect(r.exit_code, `${r.leaver}'s leave said: ${r.output}`).toBe(0)
    expect(r.output).toMatch(/handed over to [0-9a-f]{8}/)
    // One claim per hand-over: the successor's, nobody else's.
    expect(r.claims).toEqual([r.successor])
    // Mail flowed through the hand-over: the successor acknowledged after the leave returned.
    expect(r.acked_after).toBeGreaterThan(0)
  }
  expect(serverOverlaps(fed, Date.now())).toEqual([])
  const server = await fed.server(30_000)
  expect(await lostAcknowledged(server, load)).toEqual([])
  return results
}
