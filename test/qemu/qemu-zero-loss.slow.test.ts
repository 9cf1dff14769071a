import { describe, expect, it } from 'vitest'
import type { LogRecord } from '../../src/demo/local-federation.ts'
import { freePort } from '../../src/util/free-port.ts'
import { localFederations } from '../e2e/fixtures.ts'
import { AckClient, type Door, readStored } from './ack-client.ts'
import { guestFixture, relaxProbe } from './guest.ts'

/**
 * Output commit (issue 18) for a QEMU service, end to end through three `sustain join` processes: the
 * example guest's acknowledging line service (ack.sh: each line is stored in guest memory, then answered
 * "OK N") is reached through the front door (client port `ack`, a hostfwd into the guest), with
 * `output_commit: 1`. Clients that know only the front doors' addresses send lines; the serving machine
 * (node and QEMU) is SIGKILLed; then every line a client got "OK" for must be in the new server's guest,
 * read through the front door: the judgement is the clients' acks against the guest's own list.
 */
const CLIENTS = 3
/** Acks before the kill (a few snapshot cycles of output commit under TCG). */
const ACKS_BEFORE_KILL = 3
/** Acks after the new server serves: its own output commit works too. */
const ACKS_AFTER = 1
/**
 * TCG boot and restore on 2 shared cores; at a load of 80+ one snapshot of the 128 MiB guest took up to
 * 230 s to encode and a release 316 s after its freeze (the bound is for progress, not a timing check).
 */
const SERVE_TIMEOUT_MS = 600_000

const startFederation = localFederations()
const event =
  (name: string, after_ms = 0) =>
  (r: LogRecord) =>
    r.event === name && Number(r.time) >= after_ms

async function until(what: string, check: () => boolean, timeout_ms: number): Promise<void> {
  const deadline = Date.now() + timeout_ms
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeout_ms} ms`)
    await new Promise((ok) => setTimeout(ok, 100))
  }
}

describe('output commit for a QEMU service: SIGKILL of the serving machine', () => {
  it('every line a client got "OK" for through the front door is in the new server\'s guest', async () => {
    const guest = await guestFixture()
    await relaxProbe(guest.service_dir, 15_000)
    const clients: AckClient[] = []
    try {
      const ack_ports = [await freePort(), await freePort(), await freePort()]
      const fed = await startFederation({
        nodes: 3,
        service_dir: guest.service_dir,
        snapshot_interval_ms: 5000,
        front_door: { port_name: 'ack', hold_ms: SERVE_TIMEOUT_MS },
        output_commit: 1,
        service_ports: (i) => ({ ack: ack_ports[i]! }),
      })
      const server = await fed.server(SERVE_TIMEOUT_MS)
      await server.waitFor(event('service_answering'), SERVE_TIMEOUT_MS, 'answering')
      // Clients know every front door and start with a node that does not serve (forwarded to the server).
      const doors: Door[] = [...fed.nodes.filter((n) => n !== server), server].map((n) => n.front_door!)
      for (let c = 0; c < CLIENTS; c++) {
        const client = new AckClient(`c${c}`, doors.slice(c % 2).concat(doors.slice(0, c % 2)))
        clients.push(client)
        client.start()
      }
      const total = () => clients.reduce((s, c) => s + c.acked.length, 0)
      await until('acks before the kill', () => total() >= ACKS_BEFORE_KILL, SERVE_TIMEOUT_MS)
      const before = clients.flatMap((c) => c.acked)

      const killed_ms = Date.now()
      server.signal('SIGKILL') // the machine: node and its QEMU
      await server.waitExit(10_000)
      const acked_at_kill = total()
      const successor = await fed.server(SERVE_TIMEOUT_MS)
      await until('acks from the new server', () => total() >= acked_at_kill + ACKS_AFTER, SERVE_TIMEOUT_MS)
      for (const client of clients) await client.stop()

      const door = successor.front_door!
      let stored: string[] = []
      for (let attempt = 1; ; attempt++) {
        try {
          stored = await readStored(door, 60_000)
          break
        } catch (error) {
          if (attempt >= 5) throw error
        }
      }
      const acked = clients.flatMap((c) => c.acked)
      const held = new Set(stored)
      const lost = acked.filter((a) => !held.has(a.id)).map((a) => a.id)
      const duplicated = stored.filter((line, i) => stored.indexOf(line) !== i)
      const restored = await successor.waitFor(event('restored', killed_ms), 10_000, 'restored')
      const released = fed.nodes.flatMap((n) => n.records.filter(event('output_released')))
      const latencies = before.map((a) => Math.round(a.latency_ms)).sort((a, b) => a - b)
      console.log(
        JSON.stringify({
          acked: acked.length,
          acked_before_kill: acked_at_kill,
          unanswered: clients.flatMap((c) => c.unanswered).length,
          stored: stored.length,
          lost,
          duplicated,
          restored_snapshot: restored.snapshot,
          failover_ms: (acked.find((a) => a.at_ms > killed_ms)?.at_ms ?? Number.NaN) - killed_ms,
          ack_latency_ms_before_kill: {
            median: latencies[Math.floor(latencies.length / 2)],
            max: latencies.at(-1),
          },
          commit_ms: released.map((r) => r.commit_ms),
        }),
      )
      expect(acked.length).toBeGreaterThanOrEqual(ACKS_BEFORE_KILL + ACKS_AFTER)
      expect(lost).toEqual([])
      expect(duplicated).toEqual([])
      expect(successor).not.toBe(server)
    } finally {
      for (const client of clients) await client.stop()
      await startFederation.stopAll()
      await guest.cleanup()
    }
  }, 2_400_000)
})
