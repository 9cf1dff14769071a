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
import { copyFile, mkdir, readFile, rm, stat } from 'node:fs/promises'
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
import { isMemoryPart } from '../src/drivers/qemu/page-image.ts'
import { QmpClient } from '../src/drivers/qemu/qmp.ts'
import { keepRun } from './lib/results-file.ts'
import { benchCommand, type RunMeta, startRun } from './lib/run-meta.ts'
import type { FromBootResult, IntervalResult, LargeResult, QemuRun } from './render/qemu.ts'
import { renderResults } from './render/results-md.ts'

const MIB = 1024 * 1024
const quick = process.argv.includes('--quick')
const INTERVALS_S = quick ? [1, 5] : [1, 5, 30]
const SNAPSHOTS_PER_INTERVAL = quick ? 2 : 3
/** Snapshots every FROM_BOOT_INTERVAL_S from 1 s after QEMU starts: 30 s (quick) or 90 s of the guest's life. */
const FROM_BOOT_SNAPSHOTS = quick ? 6 : 18
const FROM_BOOT_INTERVAL_S = 5
/** The large guest (issue 21): 2 GiB / 8 GiB, or 1 GiB / 2 GiB with --quick. */
const LARGE = quick ? { memory_mib: 1024, disk_mib: 2048 } : { memory_mib: 2048, disk_mib: 8192 }
const LARGE_INTERVAL_S = 5
/** Background snapshots after the base. */
const LARGE_SNAPSHOTS = quick ? 4 : 10
const STOP_COPY_SAMPLES = 2
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
        const memory = taken.manifest.parts
          .filter((p) => isMemoryPart(p.name))
          .reduce((n, p) => n + p.size_bytes, 0)
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
  const answering = waitEvent(a, 'answering', 600_000).then(() => performance.now())
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
  const { accel, materialize_s, restore_to_answering_s } = await killAndRestore(a, engine, manifest, 'b')
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

/**
 * The large guest (issue 21): the example guest with LARGE memory, a second sparse raw disk of LARGE
 * size, and its write load (guest/load.sh) rewriting 1 % of memory and 0.1 % of that disk per
 * LARGE_INTERVAL_S. Background snapshots (memory while the guest runs, disks by change) at that
 * interval, then stop-and-copy captures on the same guest, then restore to answering on another node.
 */
async function largeRun(base: QemuServiceManifest, pool: CodecPool): Promise<LargeResult> {
  const { memory_mib, disk_mib } = LARGE
  const mem_kib_per_s = Math.max(1, Math.round((memory_mib * 1024 * 0.01) / LARGE_INTERVAL_S))
  const disk_kib_per_s = Math.max(1, Math.round((disk_mib * 1024 * 0.001) / LARGE_INTERVAL_S))
  const ring_mib = Math.max(16, Math.round(memory_mib / 8))
  const manifest: QemuServiceManifest = {
    ...base,
    name: 'large-vm',
    memory_mib,
    append: `${base.append} sustain.load=${mem_kib_per_s},${disk_kib_per_s},${ring_mib}`,
    disks: [...base.disks, { name: 'load', size_mib: disk_mib, format: 'raw' }],
  }
  const a_port = port()
  const a = createQemuDriver({
    service_dir: SERVICE,
    state_dir: join(TMP, 'large-a', 'state'),
    port: a_port,
    log,
    manifest,
    capture_mode: 'background',
  })
  const answering = waitEvent(a, 'answering', 600_000)
  await a.start()
  await answering
  // The load fills its memory ring first; the measurement starts once it rewrites piece by piece.
  const deadline = performance.now() + 600_000
  while (!(await readFile(a.consoleLog!, 'utf8')).includes('load: ')) {
    if (performance.now() > deadline) throw new Error('the large guest never started its load')
    await sleep(1000)
  }
  await sleep(ring_mib * 200 + 2 * LARGE_INTERVAL_S * 1000) // ~5 MiB/s of /dev/urandom under TCG
  say(
    `large guest up (${memory_mib} MiB, disk ${disk_mib} MiB, load ${mem_kib_per_s} KiB/s memory, ${disk_kib_per_s} KiB/s disk)`,
  )
  await rm(join(TMP, 'store-large'), { recursive: true, force: true })
  const store = await SnapshotStore.open(join(TMP, 'store-large'), pool)
  const engine = new SnapshotEngine({ store, node: NODE })
  const pauses: number[] = []
  const walls: number[] = []
  const deltas: number[] = []
  const changed: number[] = []
  const clock_lag_ms: number[] = []
  let failed = 0
  let last_at = 0
  for (let i = 0; i <= LARGE_SNAPSHOTS; i++) {
    if (i > 0) await sleep(LARGE_INTERVAL_S * 1000 - (performance.now() - last_at))
    const before = await readCounter(a_port)
    const at = performance.now()
    try {
      const capture = await a.capture()
      try {
        const { manifest: m } = await engine.take(capture.parts, { term: 1 })
        walls.push(performance.now() - at)
        const after = await readCounter(a_port)
        // The guest's own clock across the snapshot, against the host's: a pause it noticed shows here.
        clock_lag_ms.push(after.host_ms - before.host_ms - (after.uptime_s - before.uptime_s) * 1000)
        if (i > 0) {
          pauses.push(capture.pause_ms)
          deltas.push(store.info(m.id)!.delta_bytes)
          changed.push(((at - last_at) / 1000) * (mem_kib_per_s + disk_kib_per_s) * 1024)
        }
      } finally {
        await capture.release()
      }
    } catch (error) {
      failed++
      say(`large snapshot failed: ${error}`)
    }
    last_at = at
    say(
      `large snapshot ${i}: pause ${round(pauses.at(-1) ?? 0)} ms, delta ${deltas.at(-1) ?? '-'} bytes, wall ${round((walls.at(-1) ?? 0) / 1000, 1)} s`,
    )
  }
  await a.setCaptureMode('stop-copy')
  const stop_copy: number[] = []
  for (let i = 0; i < STOP_COPY_SAMPLES; i++) {
    const capture = await a.capture()
    stop_copy.push(capture.pause_ms)
    await capture.release()
  }
  say(`large stop-and-copy pauses ${stop_copy.map((p) => round(p)).join(', ')} ms`)
  const { materialize_s, restore_to_answering_s } = await killAndRestore(a, engine, manifest, 'large-b')
  const savevm = await savevmRun(manifest, STOP_COPY_SAMPLES, false)
  const ratios = deltas.map((d, i) => d / changed[i]!)
  return {
    memory_mib,
    disk_mib,
    load: { memory_kib_per_s: mem_kib_per_s, disk_kib_per_s, memory_ring_mib: ring_mib },
    snapshots: pauses.length,
    failed_snapshots: failed,
    pause_p50_ms: round(percentile(pauses, 0.5)),
    pause_p99_ms: round(percentile(pauses, 0.99)),
    pause_max_ms: round(Math.max(...pauses)),
    bytes_per_snapshot: Math.round(median(deltas)),
    changed_bytes_per_snapshot: Math.round(median(changed)),
    bytes_over_changed: round(median(ratios), 2),
    snapshot_wall_s: round(median(walls) / 1000, 1),
    guest_clock_lag_ms: clock_lag_ms.map((x) => round(x)),
    restore_materialize_s: round(materialize_s, 2),
    restore_to_answering_s: round(restore_to_answering_s, 2),
    stop_copy_pause_ms: round(median(stop_copy)),
    savevm_pause_ms: savevm.savevm_pause_ms.p50,
  }
}

/** Nearest-rank percentile: with fewer than 100 samples p99 is the maximum. */
function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)] ?? 0
}

/** The guest's counter answer with the host's time of it. */
async function readCounter(port: number): Promise<{ uptime_s: number; host_ms: number }> {
  const line = await probeBanner(port, BANNER, 5000)
  const host_ms = performance.now()
  const match = / uptime ([\d.]+) /.exec(line)
  if (!match) throw new Error(`unexpected answer: ${line}`)
  return { uptime_s: Number(match[1]), host_ms }
}

/** SIGKILLs A's guest, restores the newest snapshot on a new node and starts it until it answers. */
async function killAndRestore(
  a: QemuDriver,
  engine: SnapshotEngine,
  manifest: QemuServiceManifest,
  name: string,
) {
  process.kill(a.pid!, 'SIGKILL')
  await waitEvent(a, 'exited', 10_000).catch(() => {})
  await a.close()
  const b = createQemuDriver({
    service_dir: SERVICE,
    state_dir: join(TMP, name, 'state'),
    port: port(),
    log,
    manifest,
  })
  const restore_started = performance.now()
  await engine.restoreNewest(() => b.stateWriter())
  const materialize_s = (performance.now() - restore_started) / 1000
  const b_answering = waitEvent(b, 'answering', 600_000)
  await b.start()
  await b_answering
  const restore_to_answering_s = (performance.now() - restore_started) / 1000
  const accel = b.accel
  await b.close()
  return { accel, materialize_s, restore_to_answering_s }
}

/** QEMU's own savevm (VM state + disk snapshot inside the qcow2 disks) and -loadvm at start. */
async function savevmRun(manifest: QemuServiceManifest, samples = SNAPSHOTS_PER_INTERVAL, loadvm = true) {
  const state_dir = join(TMP, `savevm-${manifest.name}`)
  await mkdir(state_dir, { recursive: true })
  const qcow = { ...manifest, disks: manifest.disks.map((d) => ({ ...d, format: 'qcow2' as const })) }
  for (const d of manifest.disks) {
    const disk = join(state_dir, `${d.name}.qcow2`)
    if (d.image)
      await promisify(execFile)('qemu-img', ['convert', '-O', 'qcow2', join(SERVICE, d.image), disk])
    else await promisify(execFile)('qemu-img', ['create', '-q', '-f', 'qcow2', disk, `${d.size_mib}M`])
  }
  const disk = join(state_dir, `${manifest.disks[0]!.name}.qcow2`)
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
    await waitBanner(service_port, 600_000)
    return { child, qmp, answering_s: (performance.now() - started) / 1000 }
  }
  const hmp = (qmp: QmpClient, command: string) =>
    qmp.execute<string>('human-monitor-command', { 'command-line': command }, 120_000)
  const first = await start([])
  await sleep(2000)
  const before = (await stat(disk)).size
  const pauses: number[] = []
  for (let i = 0; i < samples; i++) {
    const t = performance.now()
    const out = await hmp(first.qmp, `savevm s${i}`)
    if (out.trim()) throw new Error(`savevm: ${out.trim()}`)
    pauses.push(performance.now() - t)
    await sleep(1000)
  }
  const after = (await stat(disk)).size
  await first.qmp.execute('quit').catch(() => {})
  await new Promise((ok) => first.child.once('exit', ok))
  let loadvm_start_to_answering_s = 0
  if (loadvm) {
    const second = await start(['-loadvm', `s${samples - 1}`])
    await second.qmp.execute('quit').catch(() => {})
    await new Promise((ok) => second.child.once('exit', ok))
    loadvm_start_to_answering_s = round(second.answering_s, 2)
  }
  await rm(state_dir, { recursive: true, force: true })
  return {
    savevm_pause_ms: { p50: round(median(pauses)), max: round(Math.max(...pauses)), samples: pauses.length },
    qcow2_growth_bytes_per_savevm: Math.round((after - before) / samples),
    loadvm_start_to_answering_s,
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
  say(`large guest: ${LARGE.memory_mib} MiB, disk ${LARGE.disk_mib} MiB`)
  const large_pool = createCodecPool({ threads: 1 })
  let large: LargeResult
  try {
    large = await largeRun(manifest, large_pool)
  } finally {
    await large_pool.close()
  }
  const result: QemuRun & RunMeta = {
    quick,
    guest: { memory_mib: manifest.memory_mib, accel: sustain.accel },
    sustain,
    savevm,
    large,
    ...finish(),
  }
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`)
  await keepRun('qemu.json', result)
  await renderResults()
}

await main()
