import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type CodecPool, createCodecPool } from '../../snapshot/codec-pool.ts'
import { SnapshotEngine, type TakeResult } from '../../snapshot/engine.ts'
import { SnapshotStore } from '../../snapshot/store.ts'
import { isMemoryPart } from '../../src/drivers/qemu/page-image.ts'
import { freePort } from '../../src/util/free-port.ts'
import { type CounterReading, type GuestFixture, guestFixture, nextEvent, readCounter } from './guest.ts'

/**
 * Issue 27: snapshots every 5 s from the guest's first second (while it boots and its migration stream
 * grows and shifts), through RUN_MS of running. Every snapshot must succeed, and a failover at the end
 * must restore a guest no more than one interval behind the last counter read.
 */
const INTERVAL_MS = 5000
const RUN_MS = 90_000
const FIRST_MS = 1000
/** The counter adds 1 every 0.5 s of guest time. */
const TICKS_PER_INTERVAL = INTERVAL_MS / 500
const NODE = 'ef'.repeat(32)
const BOOT_TIMEOUT_MS = 90_000

let f: GuestFixture
/** Default threads, retention and rebase policy: as a node runs it. */
let pool: CodecPool
beforeAll(async () => {
  f = await guestFixture()
  pool = createCodecPool()
})
afterAll(async () => {
  await f?.cleanup()
  await pool?.close()
})

const sleep = (ms: number) => new Promise((ok) => setTimeout(ok, Math.max(0, ms)))

/** The counter, or null when the guest does not answer within 1 s (it boots): the capture must not wait. */
const tryCounter = (port: number) => readCounter(port, 1000).catch(() => null)

describe('snapshots of the example guest from its first second on', () => {
  it(
    'every snapshot succeeds, and a failover restores a guest within one interval of the last read',
    async () => {
      const store = await SnapshotStore.open(join(f.dir, 'store'), pool)
      const engine = new SnapshotEngine({ store, node: NODE, retain_newest: 3 })
      const a_port = await freePort()
      const a = await f.driver(join(f.dir, 'node-a', 'state'), a_port)
      await a.start()
      const started = Date.now()
      const taken: {
        result: TakeResult
        memory_bytes: number
        delta_bytes: number
        read: CounterReading | null
      }[] = []
      const failures: string[] = []
      let attempts = 0
      const capture_at_ms: number[] = []
      for (let next = started + FIRST_MS; next < started + RUN_MS; next += INTERVAL_MS) {
        await sleep(next - Date.now())
        attempts++
        // Read before the capture (the restored guest must be at least here); not while it surely boots.
        const read = attempts === 1 ? null : await tryCounter(a_port)
        capture_at_ms.push(Date.now() - started)
        const capture = await a.capture()
        try {
          const result = await engine.take(capture.parts, { term: 1 })
          const memory_bytes = result.manifest.parts
            .filter((p) => isMemoryPart(p.name))
            .reduce((n, p) => n + p.size_bytes, 0)
          // Read now: retention drops older snapshots from the store.
          const delta_bytes = store.info(result.manifest.id)!.delta_bytes
          taken.push({ result, memory_bytes, delta_bytes, read })
        } catch (error) {
          failures.push(String(error))
        } finally {
          await capture.release()
        }
      }
      const last_read = await readCounter(a_port)
      const boot_id = last_read.boot_id
      const newest_read = taken.findLast((t) => t.read !== null)!.read!
      const data_bytes = f.records
        .filter((r) => r['event'] === 'memory_split')
        .map((r) => Number(r['data_bytes']))
      console.log(
        JSON.stringify({
          attempts,
          capture_at_s: capture_at_ms.map((ms) => Number((ms / 1000).toFixed(1))),
          taken: taken.length,
          failed: failures.length,
          memory_mb: taken.map((t) => Number((t.memory_bytes / 1e6).toFixed(1))),
          data_mb: data_bytes.map((n) => Number((n / 1e6).toFixed(1))),
          split_ms: f.records.filter((r) => r['event'] === 'memory_split').map((r) => r['split_ms']),
          delta_mb: taken.map((t) => Number((t.delta_bytes / 1e6).toFixed(2))),
          codec_refusals: taken.map((t) => t.result.codec_refusals),
          rebases: taken.map((t) => t.result.rebase_reason ?? null),
          pause_ms: f.records.filter((r) => r['event'] === 'service_paused').map((r) => r['pause_ms']),
        }),
      )
      expect(failures).toEqual([])
      expect(taken.length).toBe(attempts)
      expect(attempts).toBeGreaterThanOrEqual(Math.floor((RUN_MS - FIRST_MS) / INTERVAL_MS) - 2)
      // The run covered what broke: a first snapshot while booting, and a stream that grew afterwards.
      expect(capture_at_ms[0]).toBeLessThan(FIRST_MS + 1000)
      // The page image's files have the guest's RAM size whatever it holds: what grew is the memory that
      // is not zero, one memory_split record per capture (split after each capture of the running guest).
      expect(data_bytes).toHaveLength(attempts)
      expect(Math.max(...data_bytes)).toBeGreaterThan(data_bytes[0]! + 10e6)

      // Failover: the server and its QEMU die; another node restores the newest snapshot.
      const exited = nextEvent(a, 'exited', 5000)
      process.kill(a.pid!, 'SIGKILL')
      await exited
      const b_port = await freePort()
      const b = await f.driver(join(f.dir, 'node-b', 'state'), b_port)
      const restored = await engine.restoreNewest(() => b.stateWriter())
      const newest = taken.at(-1)!.result
      expect(restored.id).toBe((newest.rebased ?? newest.manifest).id)
      const answering = nextEvent(b, 'answering', BOOT_TIMEOUT_MS)
      await b.start()
      await answering
      const reading = await readCounter(b_port)
      console.log(
        JSON.stringify({
          last_read: last_read.counter,
          newest_read: newest_read.counter,
          restored: reading.counter,
        }),
      )
      expect(reading.boot_id).toBe(boot_id) // continued, not rebooted
      expect(reading.counter).toBeGreaterThanOrEqual(newest_read.counter)
      expect(reading.counter).toBeGreaterThanOrEqual(last_read.counter - TICKS_PER_INTERVAL)
      await b.stop('test')
    },
    RUN_MS + 4 * BOOT_TIMEOUT_MS,
  )
})
