import { describe, expect, it } from 'vitest'
import type { LocalNode, LogRecord } from '../../src/demo/local-federation.ts'
import { localFederations } from '../e2e/fixtures.ts'
import { type CounterReading, guestFixture, readCounter } from './guest.ts'

/**
 * Issue 27 through three `sustain join` processes: the example guest serves on one node, snapshots every
 * 5 s from its first seconds (while its migration stream still grows and shifts), the serving machine
 * (node and QEMU) is killed, and the next server must answer with the restored guest no more than one
 * interval (plus replication) behind the last counter read, then take snapshots of its own.
 */
const INTERVAL_MS = 5000
/** The counter adds 1 every 0.5 s of guest time. */
const TICK_MS = 500
const READ_FOR_MS = 25_000
/**
 * A snapshot still on its way to the candidates at the kill cannot be restored, so the restored guest may
 * lag the last read by one interval plus the time a snapshot takes from its capture until a candidate holds
 * it (encode, publish, fetch). The logs show (printed as replication_ms, load ~4 on 2 shared cores, TCG):
 * 0.7-1.2 s once the guest has settled (deltas ~2 MB), 2-10 s for the first snapshots of the booting guest
 * (deltas of 20-50 MB); the kill comes 25 s after the first answer, when the guest has settled. 6 s covers
 * the settled figures five times over, and stays far below a rebooted guest's age.
 */
const REPLICATION_ALLOWANCE_MS = 6000
const ALLOWED_TICKS = Math.ceil((INTERVAL_MS + REPLICATION_ALLOWANCE_MS) / TICK_MS)
/** TCG boot and restore on 2 shared cores. */
const SERVE_TIMEOUT_MS = 120_000

const startFederation = localFederations()

const event =
  (name: string, after_ms = 0) =>
  (r: LogRecord) =>
    r.event === name && Number(r.time) >= after_ms
/** pino's warn level or worse, saying a snapshot failed. */
const snapshotFailed = (r: LogRecord) => Number(r.level) >= 40 && /^snapshot failed/.test(String(r.msg))
const sleep = (ms: number) => new Promise((ok) => setTimeout(ok, Math.max(0, ms)))

describe('the example QEMU guest on three sustain join processes: the server machine dies', () => {
  it('the new server answers with the restored guest within one interval of the last read, and its own snapshots succeed', async () => {
    const guest = await guestFixture()
    try {
      const fed = await startFederation({
        nodes: 3,
        service_dir: guest.service_dir,
        snapshot_interval_ms: INTERVAL_MS,
      })
      const server = await fed.server(SERVE_TIMEOUT_MS)
      const answering = await server.waitFor(event('service_answering'), SERVE_TIMEOUT_MS, 'answering')

      // Read the counter from the server about once a second while it snapshots.
      const reads: (CounterReading & { at_ms: number })[] = []
      const started = Date.now()
      for (let next = started; next < started + READ_FOR_MS; next += 1000) {
        await sleep(next - Date.now())
        reads.push({ ...(await readCounter(server.port, 3000)), at_ms: Date.now() })
      }
      const last = reads.at(-1)!
      expect(new Set(reads.map((r) => r.boot_id)).size).toBe(1)
      const taken_before = server.records.filter(event('snapshot_taken'))
      console.log(
        JSON.stringify({
          snapshots_in_read_window: taken_before.length,
          total_ms: taken_before.map((r) => r.total_ms),
          capture_ms: taken_before.map((r) => r.capture_ms),
          take_ms: taken_before.map((r) => r.take_ms),
          publish_ms: taken_before.map((r) => r.publish_ms),
          split_ms: server.records.filter((r) => r.event === 'memory_split').map((r) => r.split_ms),
        }),
      )
      // Snapshots started while the guest was young and kept succeeding on every node.
      expect(taken_before.length).toBeGreaterThanOrEqual(Math.floor(READ_FOR_MS / INTERVAL_MS) - 1)
      for (const node of fed.nodes) expect(node.records.filter(snapshotFailed)).toEqual([])

      const others = fed.nodes.filter((n) => n !== server)
      const killed_ms = Date.now()
      server.signal('SIGKILL') // the machine: node and its QEMU
      await server.waitExit(10_000)
      // Every snapshot the dead server logged (one may have finished between the check above and the kill).
      const taken = server.records.filter(event('snapshot_taken'))
      const successor = await fed.server(SERVE_TIMEOUT_MS)
      expect(others).toContain(successor)
      const after = await readCounter(successor.port, 5000)
      const answered_ms = Date.now()
      const restored = await successor.waitFor(event('restored', killed_ms), 10_000, 'restored')
      const restored_id = String(restored.snapshot)
      const restored_taken = taken.find((r) => r.id === restored_id)

      // How long each snapshot took from its capture until each candidate held it.
      const replication_ms = taken.flatMap((t) =>
        others.flatMap((n: LocalNode) => {
          const got = n.records.find((r) => r.event === 'snapshot_collected' && r.id === t.id)
          return got ? [Number(got.time) - (Number(t.time) - Number(t.total_ms))] : []
        }),
      )

      // Its own next snapshots: at least 2, and none failed anywhere during the whole run.
      let own_seen = 0 // each record is matched once, past ones first
      await successor.waitFor(
        (r) => event('snapshot_taken', killed_ms)(r) && ++own_seen === 2,
        4 * INTERVAL_MS + 60_000,
        'two snapshots of the new server',
      )
      const own = successor.records.filter(event('snapshot_taken', killed_ms))
      console.log(
        JSON.stringify({
          first_answer_uptime_s: reads[0]!.uptime_s,
          first_snapshot_after_answering_ms: taken_before[0]
            ? Number(taken_before[0].time) - Number(answering.time)
            : null,
          snapshots_before_kill: taken.length,
          pause_ms: taken.map((r) => r.pause_ms),
          delta_mb: taken.map((r) => Number((Number(r.delta_bytes) / 1e6).toFixed(1))),
          replication_ms,
          last_read: {
            counter: last.counter,
            uptime_s: last.uptime_s,
            before_kill_ms: killed_ms - last.at_ms,
          },
          restored_snapshot: restored_id,
          restored_captured_before_kill_ms: restored_taken
            ? killed_ms - (Number(restored_taken.time) - Number(restored_taken.total_ms))
            : null,
          after: { counter: after.counter, uptime_s: after.uptime_s },
          behind_ticks: last.counter - after.counter,
          allowed_ticks: ALLOWED_TICKS,
          failover_ms: answered_ms - killed_ms,
          successor: successor.name,
          own_snapshots: own.map((r) => ({ id: r.id, pause_ms: r.pause_ms, delta_bytes: r.delta_bytes })),
        }),
      )
      // The restored guest, not a rebooted one: same boot, and as old as the dead one was, less the loss.
      expect(after.boot_id).toBe(last.boot_id)
      expect(after.uptime_s).toBeGreaterThanOrEqual(
        last.uptime_s - (INTERVAL_MS + REPLICATION_ALLOWANCE_MS) / 1000,
      )
      // No more than one interval (plus replication) behind the last counter read before the kill.
      expect(after.counter).toBeGreaterThanOrEqual(last.counter - ALLOWED_TICKS)
      // The restored snapshot is one the dead server took: its newest or the one before (one interval),
      // and at least as new as any read made before its capture says.
      expect(restored_taken).toBeDefined()
      expect(taken.slice(-2).map((r) => r.id)).toContain(restored_id)
      const captured_ms = Number(restored_taken!.time) - Number(restored_taken!.total_ms)
      const read_before_capture = reads.filter((r) => r.at_ms < captured_ms).at(-1)
      expect(read_before_capture).toBeDefined()
      expect(after.counter).toBeGreaterThanOrEqual(read_before_capture!.counter)
      expect(own.length).toBeGreaterThanOrEqual(2)
      for (const node of fed.nodes) expect(node.records.filter(snapshotFailed)).toEqual([])
    } finally {
      await startFederation.stopAll()
      await guest.cleanup()
    }
  }, 600_000)
})
