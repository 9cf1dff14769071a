import { execFile } from 'node:child_process'
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { expect } from 'vitest'
import { createLogger, type Logger } from '../../lib/log.ts'
import type { DriverEvent } from '../../src/drivers/driver.ts'
import { probeBanner } from '../../src/drivers/qemu/banner-probe.ts'
import { createQemuDriver, type QemuDriver } from '../../src/drivers/qemu/driver.ts'
import { loadQemuManifest } from '../../src/drivers/qemu/manifest.ts'
import { isMemoryPart, MEMORY_DEVICES_FILE } from '../../src/drivers/qemu/page-image.ts'
import { requireTools } from '../system/requirements.ts'

/** The example guest's main RAM block as a page image's part. */
export const RAM_PART = 'memory.ram.0.pc.ram'

/** A capture's parts: the disks named, then guest memory as a page image (page-image.ts). */
export function expectMemoryImage(names: string[], disks: string[]): void {
  expect(names.filter((n) => !isMemoryPart(n))).toEqual(disks)
  expect(names).toContain(MEMORY_DEVICES_FILE)
  expect(names).toContain(RAM_PART)
  expect(names).not.toContain('memory.state')
}

const EXAMPLE = fileURLToPath(new URL('../../examples/qemu-guest', import.meta.url))

/** The example guest built into a temp service directory (fresh keys, fresh disk). */
export interface GuestFixture {
  dir: string
  service_dir: string
  records: Record<string, unknown>[]
  log: Logger
  driver(state_dir: string, port: number): Promise<QemuDriver>
  cleanup(): Promise<void>
}

export async function guestFixture(): Promise<GuestFixture> {
  requireTools('qemu', 'qemu-img', 'busybox', 'dropbear', 'cpio', 'kernel')
  const dir = await mkdtemp(join(tmpdir(), 'sustain-qemu-test-'))
  const service_dir = join(dir, 'service')
  await mkdir(service_dir)
  await promisify(execFile)('bash', [join(EXAMPLE, 'build.sh'), join(service_dir, 'out')], {
    timeout: 60_000,
  })
  await copyFile(join(EXAMPLE, 'sustain-service.yaml'), join(service_dir, 'sustain-service.yaml'))
  const manifest = await loadQemuManifest(service_dir)
  const records: Record<string, unknown>[] = []
  const destination = new Writable({
    write(chunk, _encoding, done) {
      for (const line of String(chunk).split('\n')) if (line) records.push(JSON.parse(line))
      done()
    },
  })
  const log = createLogger({ level: 'info', destination })
  const drivers: QemuDriver[] = []
  return {
    dir,
    service_dir,
    records,
    log,
    async driver(state_dir, port) {
      const driver = createQemuDriver({ service_dir, state_dir, port, log, manifest })
      drivers.push(driver)
      return driver
    },
    async cleanup() {
      for (const driver of drivers) await driver.close()
      await rm(dir, { recursive: true, force: true })
    },
  }
}

/** The next driver event of a kind (with when it arrived, Date.now()); rejects after timeout_ms. */
export function nextEvent(
  driver: QemuDriver,
  kind: DriverEvent['kind'],
  timeout_ms: number,
): Promise<{ event: DriverEvent; at_ms: number }> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      driver.off('event', listener)
      reject(new Error(`no ${kind} event in ${timeout_ms} ms`))
    }, timeout_ms)
    const listener = (event: DriverEvent) => {
      if (event.kind !== kind) return
      clearTimeout(timer)
      driver.off('event', listener)
      resolve({ event, at_ms: Date.now() })
    }
    driver.on('event', listener)
  })
}

export interface CounterReading {
  counter: number
  uptime_s: number
  boot_id: string
}

/** What the guest's counter service answers on its forwarded port. */
export async function readCounter(port: number, timeout_ms = 5000): Promise<CounterReading> {
  const line = await probeBanner(port, /^sustain-counter /, timeout_ms)
  const match = /^sustain-counter (\d+) uptime ([\d.]+) boot ([0-9a-f-]+)/.exec(line)
  if (!match) throw new Error(`unexpected answer: ${line}`)
  return { counter: Number(match[1]), uptime_s: Number(match[2]), boot_id: match[3]! }
}

/**
 * Gives the guest's probe more time (its service directory's manifest). Under TCG on 2 shared cores at a
 * load of 30+, the banner can take over the default 2 s; a failed probe restarts the guest in place,
 * which reboots it (its memory, where ack.sh keeps its lines, is gone: see ARCHITECTURE, Not yet).
 */
export async function relaxProbe(service_dir: string, timeout_ms: number): Promise<void> {
  const path = join(service_dir, 'sustain-service.yaml')
  const text = await readFile(path, 'utf8')
  await writeFile(path, text.replace(/^probe_timeout_ms: \d+$/m, `probe_timeout_ms: ${timeout_ms}`))
}
