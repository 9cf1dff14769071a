import type { LocalFederation } from '../src/demo/local-federation.ts'
import { MailLoad } from '../src/demo/mail-load.ts'
import {
  type LeaveResult,
  leaveAndRejoin,
  lostAcknowledged,
  percentile,
  serverOverlaps,
} from '../test/e2e/leave-run.ts'

export interface LeaveUnderLoad {
  runs: number
  sent_during_leave: number
  acknowledged: number
  lost_acknowledged: number
  outage_p50_ms: number | null
  outage_max_ms: number | null
  /** Pairs of nodes whose server intervals (from their own logs) overlapped during the leaves. */
  two_servers: number
  leave_exit_nonzero: number
  /** Per leave: leaver, successor, exit code, the client's longest gap. */
  leaves: Array<Pick<LeaveResult, 'leaver' | 'successor' | 'exit_code' | 'gap_ms' | 'claims'>>
}

/**
 * `leaves` planned leaves of the server in a row (each leaver rejoins) while a client that only knows the
 * nodes' addresses mails every 50 ms; the mailbox of the last server is read by its Subject lines (lostAcknowledged).
 */
export async function leaveUnderLoad(fed: LocalFederation, leaves: number): Promise<LeaveUnderLoad> {
  await fed.server(60_000)
  const since_ms = Date.now()
  const load = new MailLoad({ ports: fed.nodes.map((n) => n.port), interval_ms: 50, prefix: 'leave' })
  load.start()
  const results: LeaveResult[] = []
  try {
    for (let i = 0; i < leaves; i++) {
      results.push(await leaveAndRejoin(fed, load))
      const r = results.at(-1)!
      process.stderr.write(
        `leave ${i + 1}/${leaves}: ${r.leaver} -> ${r.successor} exit ${r.exit_code} gap ${r.gap_ms} ms\n`,
      )
    }
  } finally {
    await load.stop()
  }
  const server = await fed.server(60_000)
  const gaps = results.map((r) => r.gap_ms)
  return {
    runs: results.length,
    sent_during_leave: load.attempted,
    acknowledged: load.acked.size,
    lost_acknowledged: (await lostAcknowledged(server, load, 'leave')).length,
    outage_p50_ms: gaps.length > 0 ? percentile(gaps, 50) : null,
    outage_max_ms: gaps.length > 0 ? Math.max(...gaps) : null,
    two_servers: serverOverlaps(fed, Date.now(), new Map(), since_ms).length,
    leave_exit_nonzero: results.filter((r) => r.exit_code !== 0).length,
    leaves: results.map(({ leaver, successor, exit_code, gap_ms, claims }) => ({
      leaver,
      successor,
      exit_code,
      gap_ms,
      claims,
    })),
  }
}
