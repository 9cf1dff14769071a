import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ChunkKind } from '../../snapshot/codec.ts'
import { type CodecPool, createCodecPool } from '../../snapshot/codec-pool.ts'
import { SnapshotEngine } from '../../snapshot/engine.ts'
import type { Manifest } from '../../snapshot/manifest.ts'
import { SnapshotStore } from '../../snapshot/store.ts'
import type { QemuDriver } from '../../src/drivers/qemu/driver.ts'
import { HostKeyMismatchError, runSshHelper } from '../../src/drivers/ssh-helper.ts'
import { freePort } from '../../src/util/free-port.ts'
import {
  type CounterReading,
  expectMemoryImage,
  type GuestFixture,
  guestFixture,
  nextEvent,
  RAM_PART,
  readCounter,
} from './guest.ts'

const MIB = 1024 * 1024
const MEMORY_BYTES = 128 * MIB
const NODE = 'cd'.repeat(32)
const BOOT_TIMEOUT_MS = 90_000

/** Polls the counter until it passes `above` (the guest ticks every 0.5 s of its own time). */
async function counterAbove(port: number, above: number, timeout_ms = 30_000): Promise<CounterReading> {
  const deadline = Date.now() + timeout_ms
  for (;;) {
    const reading = await readCounter(port)
    if (reading.counter > above) return reading
    if (Date.now() > deadline) throw new Error(`counter stuck at ${reading.counter}`)
    await new Promise((ok) => setTimeout(ok, 200))
  }
}

let f: GuestFixture
let pool: CodecPool
let store: SnapshotStore
let engine: SnapshotEngine
beforeAll(async () => {
  f = await guestFixture()
  pool = createCodecPool({ threads: 1 })
  store = await SnapshotStore.open(join(f.dir, 'store'), pool)
  // Every snapshot here is a delta against the first (asserted below): no rebase, not even when a
  // stream shift moves most chunks (the layout rule is exercised by snapshot-from-boot.slow.test.ts).
  engine = new SnapshotEngine({ store, node: NODE, rebase: { max_changed_chunk_share: 1 } })
})
afterAll(async () => {
  await f?.cleanup()
  await pool?.close()
})

describe('QEMU driver on the example guest', () => {
  let a: QemuDriver
  let a_port: number
  let boot_id: string
  const snapshots: { manifest: Manifest; before: CounterReading; after: CounterReading }[] = []
  let at_kill: CounterReading

  it('boots the guest (KVM only if the probe proves it, else TCG) and reports it answering', async () => {
    a_port = await freePort()
    a = await f.driver(join(f.dir, 'node-a', 'state'), a_port)
    const answering = nextEvent(a, 'answering', BOOT_TIMEOUT_MS)
    await a.start()
    await answering
    expect(a.running).toBe(true)
    expect(['kvm', 'tcg']).toContain(a.accel)
    const reading = await readCounter(a_port)
    boot_id = reading.boot_id
    expect(reading.counter).toBeGreaterThanOrEqual(0)
  })

  it('runs a helper verb over SSH with the pinned host key; another host key is refused', async () => {
    const result = await a.helper('info', [])
    expect(result.code).toBe(0)
    expect(result.stdout.toString()).toContain(`boot ${boot_id}`)
    const unknown = await a.helper('no-such-verb', [])
    expect(unknown.code).toBe(64)
    const key = await readFile(join(f.service_dir, 'out', 'client_key'))
    await expect(
      runSshHelper(
        {
          host: '127.0.0.1',
          port: a.sshPort!,
          username: 'root',
          private_key: key,
          host_key_sha256: 'SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA',
          helper_path: '/sustain/helper',
        },
        'info',
        [],
      ),
    ).rejects.toBeInstanceOf(HostKeyMismatchError)
  })

  it('takes three snapshots while the counter advances; deltas after the base are small', async () => {
    let last = (await readCounter(a_port)).counter
    for (let i = 0; i < 3; i++) {
      await counterAbove(a_port, last + 3) // about 2 s of guest time between snapshots
      const before = await readCounter(a_port)
      const capture = await a.capture()
      const after = await readCounter(a_port)
      expectMemoryImage(
        capture.parts.map((p) => p.name),
        ['data.raw'],
      )
      expect(capture.pause_ms).toBeGreaterThan(0)
      const { manifest } = await engine.take(capture.parts, { term: 1 })
      await capture.release()
      snapshots.push({ manifest, before, after })
      last = after.counter
    }
    const infos = snapshots.map(({ manifest }) => store.info(manifest.id)!)
    expect(infos[0]!.base).toBeNull()
    for (const info of infos.slice(1)) {
      expect(info.base).toBe(infos[0]!.id)
      // The target is < 5 % at a 5 s interval; here ~2 s apart.
      expect(info.delta_bytes).toBeLessThan(0.05 * MEMORY_BYTES)
    }
    console.log(
      'snapshot sizes',
      infos.map((i) => ({ image_bytes: i.image_bytes, delta_bytes: i.delta_bytes })),
      'pauses',
      f.records.filter((r) => r['event'] === 'service_paused').map((r) => r['pause_ms']),
    )
  })

  it('reports QEMU being killed as an exit', async () => {
    at_kill = await counterAbove(a_port, snapshots[2]!.after.counter + 6)
    const exited = nextEvent(a, 'exited', 5000)
    process.kill(a.pid!, 'SIGKILL')
    const { event } = await exited
    expect(event).toMatchObject({ kind: 'exited', signal: 'SIGKILL' })
    expect(a.running).toBe(false)
  })

  it('restores base + delta on another node: the guest continues (same boot, counter, uptime)', async () => {
    const port = await freePort()
    const b = await f.driver(join(f.dir, 'node-b', 'state'), port)
    const restored = await engine.restoreNewest(() => b.stateWriter())
    const newest = snapshots[2]!
    expect(restored.id).toBe(newest.manifest.id)
    expect(restored.base).toBe(snapshots[0]!.manifest.id)
    const answering = nextEvent(b, 'answering', BOOT_TIMEOUT_MS)
    const started_ms = Date.now()
    await b.start()
    await answering
    const reading = await readCounter(port)
    console.log(
      'restore to answering ms',
      Date.now() - started_ms,
      'counter',
      newest.before.counter,
      '->',
      reading.counter,
    )
    expect(reading.boot_id).toBe(boot_id) // no reboot
    expect(reading.counter).toBeGreaterThanOrEqual(newest.before.counter)
    expect(reading.counter).toBeLessThan(at_kill.counter) // from the snapshot, not from where A died
    expect(reading.uptime_s).toBeGreaterThanOrEqual(newest.before.uptime_s)
    expect(reading.uptime_s).toBeLessThan(at_kill.uptime_s)
    const helper = await b.helper('info', [])
    expect(helper.code).toBe(0)
    expect(helper.stdout.toString()).toContain(`boot ${boot_id}`)
    await b.stop('test')
    expect(b.running).toBe(false)
  })

  it('refuses a corrupted memory-state delta and restores the previous complete snapshot', async () => {
    const newest = snapshots[2]!.manifest
    const older = snapshots[1]!.manifest
    const memory = newest.parts.find((p) => p.name === RAM_PART)!
    const older_blobs = new Set(
      older.parts.flatMap((p) => p.chunks.map((c) => (c.b ? Buffer.from(c.b).toString('hex') : ''))),
    )
    const chunk = memory.chunks.find(
      (c) =>
        (c.k === ChunkKind.PAGES || c.k === ChunkKind.DELTA) &&
        c.b &&
        !older_blobs.has(Buffer.from(c.b).toString('hex')),
    )
    expect(chunk).toBeDefined()
    const hex = Buffer.from(chunk!.b!).toString('hex')
    const blob = join(store.dir, 'blobs', hex.slice(0, 2), hex)
    const bytes = await readFile(blob)
    bytes[bytes.length >> 1]! ^= 0xff
    await writeFile(blob, bytes)

    const port = await freePort()
    const c = await f.driver(join(f.dir, 'node-c', 'state'), port)
    const skipped: string[] = []
    const restored = await engine.restoreNewest(
      () => c.stateWriter(),
      (id) => skipped.push(id),
    )
    expect(skipped).toEqual([newest.id])
    expect(restored.id).toBe(older.id)
    const answering = nextEvent(c, 'answering', BOOT_TIMEOUT_MS)
    await c.start()
    await answering
    const reading = await readCounter(port)
    expect(reading.boot_id).toBe(boot_id)
    expect(reading.counter).toBeGreaterThanOrEqual(snapshots[1]!.before.counter)
    expect(reading.counter).toBeLessThan(snapshots[2]!.before.counter + 2)

    // A guest kernel panic (pvpanic) reaches the driver as `unusable` within 1 s of QEMU seeing it.
    const unusable = nextEvent(c, 'unusable', 30_000)
    const issued_ms = Date.now()
    void c.helper('panic', [], { timeout_ms: 20_000 }).catch(() => {})
    const { event, at_ms } = await unusable
    expect(event).toEqual({ kind: 'unusable', reason: 'guest kernel panic' })
    const panicked = f.records.find((r) => r['event'] === 'qmp_event' && r['qmp_event'] === 'GUEST_PANICKED')
    const panic_ms = panicked!['qmp_time_ms'] as number
    console.log('panic: issued->event ms', at_ms - issued_ms, 'QEMU panic->driver event ms', at_ms - panic_ms)
    expect(at_ms - panic_ms).toBeLessThan(1000)
    expect(c.running).toBe(true) // paused by the panic; the core decides what comes next
    await c.stop('panicked')
    expect(c.running).toBe(false)
  })
})
