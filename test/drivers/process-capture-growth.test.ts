import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { watch } from 'node:fs'
import { appendFile, mkdir, open, readFile, rename, stat, truncate, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type { Capture } from '../../src/drivers/driver.ts'
import type { ProcessDriver } from '../../src/drivers/process/driver.ts'
import { type Fixture, fixture, nextEvent } from './fixtures.ts'

/**
 * Captures of files that grow: only an append_only file that kept its inode and was only appended to
 * is captured as its growth; every other change is copied whole. Each generation is compared byte for
 * byte with the state directory as it was when the service was frozen.
 */

let f: Fixture
beforeEach(async () => {
  f = await fixture()
})
afterEach(async () => {
  await f.cleanup()
})

const KIB = 1024

function partPath(capture: Capture, name: string): string {
  const part = capture.parts.find((p) => p.name === name)
  if (!part || !('path' in part)) throw new Error(`no file part ${name}`)
  return part.path
}

/** The stats of the newest paused pass (what was copied while the service was stopped). */
function lastPause(): { copied_files: number; tail_files: number; copied_bytes: number } {
  const paused = f.records.filter((r) => r['event'] === 'service_paused').at(-1)
  if (!paused) throw new Error('no pause logged')
  return paused as unknown as { copied_files: number; tail_files: number; copied_bytes: number }
}

/** A driver whose service sleeps; the test changes the state itself, so it knows it at the freeze. */
async function sleeper(): Promise<ProcessDriver> {
  // precopy off: every change is copied in the pause, where the logged stats show how.
  const driver = await f.driver({ helper: undefined, append_only: ['mail/*'] }, { precopy: false })
  await driver.start()
  await mkdir(join(f.state_dir, 'mail'), { recursive: true })
  return driver
}

async function pwrite(path: string, bytes: Buffer, position: number): Promise<void> {
  const handle = await open(path, 'r+')
  try {
    await handle.write(bytes, 0, bytes.length, position)
  } finally {
    await handle.close()
  }
}

/** Captures, checks every file against the state directory, and that `earlier` still holds `held`. */
async function captureExact(
  driver: ProcessDriver,
  names: string[],
  earlier?: { capture: Capture; held: Map<string, Buffer> },
): Promise<{ capture: Capture; held: Map<string, Buffer> }> {
  const capture = await driver.capture()
  const held = new Map<string, Buffer>()
  for (const name of names) {
    const source = await readFile(join(f.state_dir, name))
    const copy = await readFile(partPath(capture, name))
    expect(copy.length, name).toBe(source.length)
    expect(copy.equals(source), `${name} differs from the state at the freeze`).toBe(true)
    held.set(name, copy)
  }
  if (earlier) {
    for (const [name, bytes] of earlier.held) {
      const now = await readFile(partPath(earlier.capture, name))
      expect(now.equals(bytes), `${name} of the earlier generation was modified`).toBe(true)
    }
  }
  return { capture, held }
}

/** Resolves once the file at `path` is larger than `size_bytes` (told by inotify, checked by stat). */
async function grownPast(path: string, size_bytes: number, timeout_ms = 20_000): Promise<void> {
  const watcher = watch(path)
  try {
    const deadline = performance.now() + timeout_ms
    while ((await stat(path)).size <= size_bytes) {
      if (performance.now() > deadline) throw new Error(`${path} did not grow past ${size_bytes}`)
      await Promise.race([once(watcher, 'change'), new Promise((ok) => setTimeout(ok, 1000))])
    }
  } finally {
    watcher.close()
  }
}

describe('capture of growing files', () => {
  it('an appended append_only file costs only its growth, exactly', async () => {
    const driver = await sleeper()
    const box = join(f.state_dir, 'mail', 'alice')
    await writeFile(box, randomBytes(200 * KIB))
    const first = await captureExact(driver, ['mail/alice'])
    for (const grow of [3 * KIB, 1, 512 * KIB]) {
      await appendFile(box, randomBytes(grow))
      const next = await captureExact(driver, ['mail/alice'], first)
      expect(lastPause()).toMatchObject({ copied_files: 0, tail_files: 1, copied_bytes: grow })
      // The earlier generation was read meanwhile; it is released only now, as the runtime does.
      await first.capture.release()
      Object.assign(first, next)
    }
  })

  it('a same-size rewrite, or a rewrite at either end before growing, is copied whole', async () => {
    const driver = await sleeper()
    const box = join(f.state_dir, 'mail', 'alice')
    await writeFile(box, randomBytes(100 * KIB))
    let earlier = await captureExact(driver, ['mail/alice'])
    const cases: [string, () => Promise<void>][] = [
      ['same size, middle rewritten', () => pwrite(box, randomBytes(100), 50 * KIB)],
      [
        'head rewritten, then grown',
        async () => {
          await pwrite(box, randomBytes(16), 24) // as SQLite's change counter
          await appendFile(box, randomBytes(4 * KIB))
        },
      ],
      [
        'last bytes of the old size rewritten, then grown',
        async () => {
          const { size } = await stat(box)
          await pwrite(box, randomBytes(10), size - 10)
          await appendFile(box, randomBytes(4 * KIB))
        },
      ],
      [
        'truncated and written again, longer',
        async () => {
          const { size } = await stat(box)
          await truncate(box, 0)
          await appendFile(box, randomBytes(size + 8 * KIB))
        },
      ],
      [
        'replaced by rename with a longer file',
        async () => {
          const { size } = await stat(box)
          await writeFile(`${box}.tmp`, randomBytes(size + 8 * KIB))
          await rename(`${box}.tmp`, box)
        },
      ],
    ]
    for (const [what, change] of cases) {
      await change()
      const { size } = await stat(box)
      const next = await captureExact(driver, ['mail/alice'], earlier)
      expect(lastPause(), what).toMatchObject({ copied_files: 1, tail_files: 0, copied_bytes: size })
      await earlier.capture.release()
      earlier = next
    }
  })

  it('a file not declared append_only is copied whole when it grows, even after a change in its middle', async () => {
    const driver = await sleeper()
    const db = join(f.state_dir, 'table.db')
    await writeFile(db, randomBytes(100 * KIB))
    let earlier = await captureExact(driver, ['table.db'])
    await appendFile(db, randomBytes(KIB))
    let next = await captureExact(driver, ['table.db'], earlier)
    expect(lastPause()).toMatchObject({ copied_files: 1, tail_files: 0 })
    await earlier.capture.release()
    earlier = next
    await pwrite(db, randomBytes(100), 60 * KIB) // between any guarded ends: only the declaration protects
    await appendFile(db, randomBytes(KIB))
    next = await captureExact(driver, ['table.db'], earlier)
    expect(lastPause()).toMatchObject({ copied_files: 1, tail_files: 0 })
  })

  it('a service appending all the time: every generation is whole records of its stream', async () => {
    const RECORD = 1024
    // Bounded in rate (8 records per 2 ms, ~4 MB/s) and size (512 MiB): the test reads each capture whole,
    // and a writer as fast as the disk once passed 2 GiB on a loaded machine.
    const MAX_RECORDS = 512 * 1024
    // Record i is 1024 bytes of the digit i % 10 after the 8-digit index; one write each, so a freeze
    // never splits one. It starts from the records already in the file.
    const writer = `const fs=require('fs');const p=process.env.SUSTAIN_STATE_DIR+'/mail/log';let i=Math.floor(fs.statSync(p).size/${RECORD});const rec=(n)=>{const b=Buffer.alloc(${RECORD},48+(n%10));b.write(String(n).padStart(8,'0'));return b};const tick=()=>{for(let k=0;k<8;k++)fs.appendFileSync(p,rec(i++));if(i<${MAX_RECORDS})setTimeout(tick,2)};tick()`
    const expected = (records: number) => {
      const out = Buffer.alloc(records * RECORD)
      for (let n = 0; n < records; n++) {
        out.fill(48 + (n % 10), n * RECORD, (n + 1) * RECORD)
        out.write(String(n).padStart(8, '0'), n * RECORD)
      }
      return out
    }
    await mkdir(join(f.state_dir, 'mail'), { recursive: true })
    await writeFile(join(f.state_dir, 'mail', 'log'), expected(64))
    const driver = await f.driver({
      helper: undefined,
      command: [process.execPath, '-e', writer],
      append_only: ['mail/*'],
    })
    await driver.start()
    const kept: { capture: Capture; bytes: Buffer }[] = []
    let last_size = 0
    for (let round = 0; round < 12; round++) {
      // The writer has written since the last capture (it may take a while to start on a loaded machine).
      await grownPast(join(f.state_dir, 'mail', 'log'), Math.max(last_size, 64 * RECORD))
      const capture = await driver.capture()
      const bytes = await readFile(partPath(capture, 'mail/log'))
      expect(bytes.length % RECORD, 'a record split by the freeze').toBe(0)
      expect(bytes.length).toBeGreaterThanOrEqual(last_size)
      expect(bytes.equals(expected(bytes.length / RECORD)), `round ${round}: not the stream`).toBe(true)
      last_size = bytes.length
      kept.push({ capture, bytes })
      // Two generations are held at once (one being encoded while the next is taken).
      if (kept.length > 2) await kept.shift()!.capture.release()
      for (const k of kept)
        expect((await readFile(partPath(k.capture, 'mail/log'))).equals(k.bytes)).toBe(true)
    }
    const pauses = f.records.filter((r) => r['event'] === 'service_paused')
    // The writer never stops, so the pause sees growth nearly every time: copied as tails.
    expect(pauses.filter((r) => Number(r['tail_files']) === 1).length).toBeGreaterThan(0)
    expect(pauses.every((r) => Number(r['copied_files']) === 0)).toBe(true)
  })

  it('a service killed while frozen for a capture leaves the previous generation intact and usable', async () => {
    const driver = await f.driver({ helper: undefined, append_only: ['mail/*'] }, { precopy: false })
    await driver.start()
    await mkdir(join(f.state_dir, 'mail'), { recursive: true })
    const box = join(f.state_dir, 'mail', 'alice')
    await writeFile(box, randomBytes(256 * KIB))
    for (let i = 0; i < 6; i++) await writeFile(join(f.state_dir, `big-${i}`), randomBytes(4 * 1024 * KIB))
    const names = ['mail/alice', ...Array.from({ length: 6 }, (_, i) => `big-${i}`)]
    const earlier = await captureExact(driver, names)
    await appendFile(box, randomBytes(5 * KIB))
    for (let i = 0; i < 6; i++) await pwrite(join(f.state_dir, `big-${i}`), randomBytes(64), 1000)
    // SIGKILL the group as soon as /proc shows it stopped: the capture is then copying.
    const pgid = driver.pid!
    const exited = nextEvent(driver, 'exited')
    const capturing = driver.capture().then(
      (capture) => capture,
      (error: Error) => error,
    )
    let killed = false
    for (let i = 0; i < 200_000 && !killed; i++) {
      const state = (await readFile(`/proc/${pgid}/stat`, 'utf8')).split(') ')[1]?.[0]
      if (state === 'T') {
        process.kill(-pgid, 'SIGKILL')
        killed = true
      }
    }
    expect(killed).toBe(true)
    await exited
    const outcome = await capturing
    // Whatever the interrupted capture did, the previous generation is as it was...
    for (const [name, bytes] of earlier.held)
      expect((await readFile(partPath(earlier.capture, name))).equals(bytes), name).toBe(true)
    if (!(outcome instanceof Error)) await outcome.release()
    // ...and the next capture, after a restart and more mail, matches the state exactly.
    await driver.start()
    await appendFile(box, randomBytes(7 * KIB))
    await captureExact(driver, names, earlier)
  })
})
