/**
 * QEMU driver benchmark on the example guest (examples/qemu-guest, 128 MiB, TCG unless KVM proves
 * usable). `npm run bench:qemu [-- --quick]`. Prints JSON, keeps the run in bench/results/qemu.json
 * (earlier runs kept) and regenerates bench/RESULTS.md (bench/render/qemu.ts). One pass: rounds = 1.
 *
 * Sustain: snapshots every 5 s from the guest's first second on (while it boots and its migration
 * stream grows: issue 27), with `failed_snapshots` (must be 0); snapshot pause (stop -> migration stream
 * to a file -> disk copy -> cont), the full state, the delta of each snapshot against its base at 1 s,
 * 5 s and 30 s intervals while the counter runs, and restore-to-answering (materialise base + delta,
 * start with -incoming, cont, banner answers).
 * Peer in the same run: QEMU's own `savevm` into the qcow2 disk and `-loadvm` at start.
 */
import { execFile, spawn } from 'node:child_process'
import { copyFile, mkdir, rm, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { createLogger } from '../lib/log.ts'
import { type CodecPool, createCodecPool } from '../snapshot/codec-pool.ts'
import { SnapshotEngine } from '../snapshot/engine.ts'
import { SnapshotStore } from '../snapshot/store.ts'
import type { DriverEvent } from '../src/drivers/driver.ts'
import { chooseAccel } from '../src/drivers/qemu/accel.ts'
import { probeBanner } from '../src/drivers/qemu/banner-probe.ts'
import { qemuArgs } from '../src/drivers/qemu/command.ts'
import { createQemuDriver, type QemuDriver } from '../src/drivers/qemu/driver.ts'
import { loadQemuManifest, type QemuServiceManifest } from '../src/drivers/qemu/manifest.ts'
import { QmpClient } from '../src/drivers/qemu/qmp.ts'
import { keepRun } from './lib/results-file.ts'
import { benchCommand, type RunMeta, startRun } from './lib/run-meta.ts'
import type { FromBootResult, IntervalResult, QemuRun } from './render/qemu.ts'
import { renderResults } from './render/results-md.ts'

const MIB = 1024 * 1024
const quick = process.argv.includes('--quick')
const INTERVALS_S = quick ? [1, 5] : [1, 5, 30]
const SNAPSHOTS_PER_INTERVAL = quick ? 2 : 3
/** Snapshots every FROM_BOOT_INTERVAL_S from 1 s after QEMU starts: 30 s (quick) or 90 s of the guest's life. */
const FROM_BOOT_SNAPSHOTS = quick ? 6 : 18
const FROM_BOOT_INTERVAL_S = 5
const ROOT = fileURLToPath(new URL('..', import.meta.url))
const TMP = join(ROOT, '.tmp', 'bench-qemu')
const SERVICE = join(TMP, 'service')
const BANNER = /^sustain-counter /
const NODE = 'ef'.repeat(32)
const log = createLogger({ level: 'warn' })

const round = (x: number, digits = 1) => Math.round(x * 10 ** digits) / 10 ** digits
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor((values.length - 1) / 2)]!
const sleep = (ms: number) => new Promise((ok) => setTimeout(ok, ms))
function say(message: string): void {
  process.stderr.write(`[bench:qemu] ${message}\n`)
}

async function waitBanner(port: number, timeout_ms: number): Promise<void> {
  const deadline = performance.now() + timeout_ms
  for (;;) {
    try {
      await probeBanner(port, BANNER, 1000)
      return
    } catch (error) {
      if (performance.now() > deadline) throw error
      await sleep(50)
    }
  }
}

function waitEvent(driver: QemuDriver, kind: DriverEvent['kind'], timeout_ms: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${kind} in ${timeout_ms} ms`)), timeout_ms)
    const listener = (event: DriverEvent) => {
      if (event.kind !== kind) return
      clearTimeout(timer)
      driver.off('event', listener)
      resolve()
    }
    driver.on('event', listener)
  })
}

let next_port = 17_400
const port = () => next_port++

/** Snapshots from the guest's first second on, on a fixed schedule; a failure is counted, not fatal. */
async function snapshotsFromBoot(
  a: QemuDriver,
  pool: CodecPool,
  started_ms: number,
  pauses: number[],
): Promise<FromBootResult> {
  await rm(join(TMP, 'store-boot'), { recursive: true, force: true })
  const store = await SnapshotStore.open(join(TMP, 'store-boot'), pool)
  const engine = new SnapshotEngine({ store, node: NODE, retain_newest: 3 })
  const result: FromBootResult = {
    interval_s: FROM_BOOT_INTERVAL_S,
    snapshots: 0,
    failed_snapshots: 0,
    failures: [],
    memory_state_bytes: { first: 0, max: 0 },
    delta_bytes: [],
    codec_refused_chunks: 0,
    rebases: [],
  }
  for (let i = 0; i < FROM_BOOT_SNAPSHOTS; i++) {
    await sleep(started_ms + 1000 + i * FROM_BOOT_INTERVAL_S * 1000 - performance.now())
    result.snapshots++
    try {
      const capture = await a.capture()
      pauses.push(capture.pause_ms)
      try {
        const taken = await engine.take(capture.parts, { term: 1 })
        const memory = taken.manifest.parts.find((p) => p.name === 'memory.state')?.size_bytes ?? 0
        if (i === 0) result.memory_state_bytes.first = memory
        result.memory_state_bytes.max = Math.max(result.memory_state_bytes.max, memory)
        result.delta_bytes.push(store.info(taken.manifest.id)!.delta_bytes)
        result.codec_refused_chunks += taken.codec_refusals
        if (taken.rebase_reason) result.rebases.push(`#${i}: ${taken.rebase_reason}`)
      } finally {
        await capture.release()
      }
    } catch (error) {
      result.failed_snapshots++
      result.failures.push(String(error))
    }
  }
  return result
}

async function sustainRun(manifest: QemuServiceManifest, pool: CodecPool) {
  const memory_bytes = manifest.memory_mib * MIB
  const a_port = port()
  const a = createQemuDriver({
    service_dir: SERVICE,
    state_dir: join(TMP, 'a', 'state'),
    port: a_port,
    log,
    manifest,
  })
  const boot_started = performance.now()
  const answering = waitEvent(a, 'answering', 120_000).then(() => performance.now())
  await a.start()
  const pauses: number[] = []
  // Snapshots pause the booting guest: boot-to-answering includes those pauses.
  const from_boot = await snapshotsFromBoot(a, pool, boot_started, pauses)
  say(`from boot: ${JSON.stringify({ ...from_boot, failures: from_boot.failures.slice(0, 3) })}`)
  const boot_to_answering_s = ((await answering) - boot_started) / 1000
  say(`booted under ${a.accel} in ${round(boot_to_answering_s, 2)} s`)
  let failed_snapshots = from_boot.failed_snapshots
  const intervals: IntervalResult[] = []
  let full_state_bytes = 0
  let store!: SnapshotStore
  let engine!: SnapshotEngine
  for (const interval_s of INTERVALS_S) {
    await rm(join(TMP, `store-${interval_s}`), { recursive: true, force: true })
    store = await SnapshotStore.open(join(TMP, `store-${interval_s}`), pool)
    engine = new SnapshotEngine({ store, node: NODE })
    let captured_at = 0
    const take = async () => {
      captured_at = performance.now()
      try {
        const capture = await a.capture()
        pauses.push(capture.pause_ms)
        try {
          const { manifest: m } = await engine.take(capture.parts, { term: 1 })
          return store.info(m.id)!
        } finally {
          await capture.release()
        }
      } catch (error) {
        failed_snapshots++
        say(`snapshot failed: ${error}`)
        return undefined
      }
    }
    const base = await take()
    full_state_bytes = base?.image_bytes ?? 0
    const deltas: number[] = []
    for (let i = 0; i < SNAPSHOTS_PER_INTERVAL; i++) {
      // The interval runs from one capture to the next (encoding included), as a snapshot timer would.
      await sleep(Math.max(0, interval_s * 1000 - (performance.now() - captured_at)))
      const info = await take()
      if (info) deltas.push(info.delta_bytes)
    }
    const result = {
      interval_s,
      delta_bytes: deltas,
      delta_pct_of_memory_median: round((100 * median(deltas)) / memory_bytes, 3),
    }
    say(`interval ${interval_s} s: ${JSON.stringify(result)}`)
    intervals.push(result)
  }
  process.kill(a.pid!, 'SIGKILL')
  await waitEvent(a, 'exited', 10_000).catch(() => {})
  await a.close()

  const b_port = port()
  const b = createQemuDriver({
    service_dir: SERVICE,
    state_dir: join(TMP, 'b', 'state'),
    port: b_port,
    log,
    manifest,
  })
  const restore_started = performance.now()
  await engine.restoreNewest(() => b.stateWriter())
  const materialize_s = (performance.now() - restore_started) / 1000
  const b_answering = waitEvent(b, 'answering', 120_000)
  await b.start()
  await b_answering
  const restore_to_answering_s = (performance.now() - restore_started) / 1000
  const accel = b.accel
  await b.close()
  return {
    accel,
    boot_to_answering_s: round(boot_to_answering_s, 2),
    /** Every snapshot of the run (from boot and at each interval) that failed: must be 0. */
    failed_snapshots,
    from_boot,
    pause_ms: { p50: round(median(pauses)), max: round(Math.max(...pauses)), samples: pauses.length },
    full_state_bytes,
    intervals,
    restore_materialize_s: round(materialize_s, 2),
    restore_to_answering_s: round(restore_to_answering_s, 2),
  }
}

/** QEMU's own savevm (VM state + disk snapshot inside the qcow2 disk) and -loadvm at start. */
async function savevmRun(manifest: QemuServiceManifest) {
  const state_dir = join(TMP, 'savevm')
  await mkdir(state_dir, { recursive: true })
  const qcow = { ...manifest, disks: manifest.disks.map((d) => ({ ...d, format: 'qcow2' as const })) }
  const disk = join(state_dir, `${manifest.disks[0]!.name}.qcow2`)
  await promisify(execFile)('qemu-img', [
    'convert',
    '-O',
    'qcow2',
    join(SERVICE, manifest.disks[0]!.image!),
    disk,
  ])
  const accel = await chooseAccel('auto', 'qemu-system-x86_64', join(SERVICE, manifest.kernel!))
  const start = async (extra: string[]) => {
    const service_port = port()
    const qmp_socket = join(state_dir, 'qmp.sock')
    await rm(qmp_socket, { force: true })
    const args = qemuArgs({
      manifest: qcow,
      accel,
      kernel: join(SERVICE, manifest.kernel!),
      initrd: join(SERVICE, manifest.initrd!),
      state_dir,
      qmp_socket,
      console_log: join(state_dir, 'console.log'),
      service_port,
    })
    const started = performance.now()
    const child = spawn('qemu-system-x86_64', [...args, ...extra], { stdio: 'ignore' })
    let gone = false
    child.on('exit', () => {
      gone = true
    })
    const qmp = await QmpClient.connect(qmp_socket, 15_000, () => gone)
    await waitBanner(service_port, 120_000)
    return { child, qmp, answering_s: (performance.now() - started) / 1000 }
  }
  const hmp = (qmp: QmpClient, command: string) =>
    qmp.execute<string>('human-monitor-command', { 'command-line': command }, 120_000)
  const first = await start([])
  await sleep(2000)
  const before = (await stat(disk)).size
  const pauses: number[] = []
  for (let i = 0; i < SNAPSHOTS_PER_INTERVAL; i++) {
    const t = performance.now()
    const out = await hmp(first.qmp, `savevm s${i}`)
    if (out.trim()) throw new Error(`savevm: ${out.trim()}`)
    pauses.push(performance.now() - t)
    await sleep(1000)
  }
  const after = (await stat(disk)).size
  await first.qmp.execute('quit').catch(() => {})
  await new Promise((ok) => first.child.once('exit', ok))
  const last = `s${SNAPSHOTS_PER_INTERVAL - 1}`
  const second = await start(['-loadvm', last])
  await second.qmp.execute('quit').catch(() => {})
  await new Promise((ok) => second.child.once('exit', ok))
  return {
    savevm_pause_ms: { p50: round(median(pauses)), max: round(Math.max(...pauses)), samples: pauses.length },
    qcow2_growth_bytes_per_savevm: Math.round((after - before) / SNAPSHOTS_PER_INTERVAL),
    loadvm_start_to_answering_s: round(second.answering_s, 2),
  }
}

async function main(): Promise<void> {
  const finish = startRun(benchCommand('bench:qemu'), 1)
  await rm(TMP, { recursive: true, force: true })
  await mkdir(SERVICE, { recursive: true })
  say('building the guest')
  await promisify(execFile)('bash', [join(ROOT, 'examples', 'qemu-guest', 'build.sh'), join(SERVICE, 'out')])
  await copyFile(
    join(ROOT, 'examples', 'qemu-guest', 'sustain-service.yaml'),
    join(SERVICE, 'sustain-service.yaml'),
  )
  const manifest = await loadQemuManifest(SERVICE)
  const pool = createCodecPool({ threads: 1 })
  let sustain: Awaited<ReturnType<typeof sustainRun>>
  try {
    sustain = await sustainRun(manifest, pool)
  } finally {
    await pool.close()
  }
  say('peer: QEMU savevm/loadvm')
  const savevm = await savevmRun(manifest)
  const result: QemuRun & RunMeta = {
    quick,
    guest: { memory_mib: manifest.memory_mib, accel: sustain.accel },
    sustain,
    savevm,
    ...finish(),
  }
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`)
  await keepRun('qemu.json', result)
  await renderResults()
}

await main()
