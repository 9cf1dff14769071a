/**
 * Delta size of background snapshots with memory stored as QEMU's stream against a page image (issue 21),
 * on the example guest (128 MiB, TCG): one guest, background capture, rounds alternating the two formats
 * at each interval (a fresh store per round: base then SNAPSHOTS deltas). Prints JSON; not kept in
 * bench/results (`npx tsx bench/qemu-layout.ts [--intervals 1,5] [--rounds 2] [--snapshots 3]`).
 */
import { execFile } from 'node:child_process'
import { copyFile, mkdir, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { createLogger } from '../lib/log.ts'
import { createCodecPool } from '../snapshot/codec-pool.ts'
import { SnapshotEngine } from '../snapshot/engine.ts'
import { SnapshotStore } from '../snapshot/store.ts'
import { createQemuDriver, type MemoryFormat } from '../src/drivers/qemu/driver.ts'
import { loadQemuManifest } from '../src/drivers/qemu/manifest.ts'
import { freePort } from '../src/util/free-port.ts'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const TMP = join(ROOT, '.tmp', 'bench-qemu-layout')
const SERVICE = join(TMP, 'service')
const NODE = 'cd'.repeat(32)
const MIB = 1024 * 1024

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`)
  return i > 0 ? process.argv[i + 1]! : fallback
}
const INTERVALS_S = arg('intervals', '1,5').split(',').map(Number)
const ROUNDS = Number(arg('rounds', '2'))
const SNAPSHOTS = Number(arg('snapshots', '3'))
const sleep = (ms: number) => new Promise((ok) => setTimeout(ok, ms))
const say = (m: string) => process.stderr.write(`[bench:qemu-layout] ${m}\n`)

async function main(): Promise<void> {
  await rm(TMP, { recursive: true, force: true })
  await mkdir(SERVICE, { recursive: true })
  await promisify(execFile)('bash', [join(ROOT, 'examples', 'qemu-guest', 'build.sh'), join(SERVICE, 'out')])
  await copyFile(
    join(ROOT, 'examples', 'qemu-guest', 'sustain-service.yaml'),
    join(SERVICE, 'sustain-service.yaml'),
  )
  const manifest = await loadQemuManifest(SERVICE)
  const memory_bytes = manifest.memory_mib * MIB
  const pool = createCodecPool({ threads: 1 })
  const driver = createQemuDriver({
    service_dir: SERVICE,
    state_dir: join(TMP, 'a', 'state'),
    port: await freePort(),
    log: createLogger({ level: 'warn' }),
    manifest,
    capture_mode: 'background',
  })
  const rows: Array<{
    interval_s: number
    format: MemoryFormat
    round: number
    delta_pct: number[]
    pause_ms: number[]
    capture_ms: number[]
  }> = []
  try {
    const answering = new Promise<void>((ok) => driver.on('event', (e) => e.kind === 'answering' && ok()))
    await driver.start()
    await answering
    await sleep(10_000) // past the boot's own churn
    for (const interval_s of INTERVALS_S)
      for (let round = 0; round < ROUNDS; round++)
        for (const format of (round % 2 === 0
          ? ['stream', 'image']
          : ['image', 'stream']) as MemoryFormat[]) {
          driver.memory_format = format
          const dir = join(TMP, `store-${interval_s}-${format}-${round}`)
          const store = await SnapshotStore.open(dir, pool)
          const engine = new SnapshotEngine({ store, node: NODE, rebase: { max_changed_chunk_share: 1 } })
          const row = {
            interval_s,
            format,
            round,
            delta_pct: [] as number[],
            pause_ms: [] as number[],
            capture_ms: [] as number[],
          }
          let at = 0
          for (let i = 0; i <= SNAPSHOTS; i++) {
            if (i > 0) await sleep(Math.max(0, interval_s * 1000 - (performance.now() - at)))
            at = performance.now()
            const capture = await driver.capture()
            const captured = performance.now() - at
            try {
              const { manifest: m } = await engine.take(capture.parts, { term: 1 })
              if (i === 0) continue
              row.delta_pct.push(Math.round((10_000 * store.info(m.id)!.delta_bytes) / memory_bytes) / 100)
              row.pause_ms.push(Math.round(capture.pause_ms * 10) / 10)
              row.capture_ms.push(Math.round(captured))
            } finally {
              await capture.release()
            }
          }
          say(JSON.stringify(row))
          rows.push(row)
          await rm(dir, { recursive: true, force: true })
        }
  } finally {
    await driver.close()
    await pool.close()
  }
  process.stdout.write(`${JSON.stringify({ memory_mib: manifest.memory_mib, rows }, null, 2)}\n`)
}

await main()
