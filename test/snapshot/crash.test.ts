import { type ChildProcess, spawn } from 'node:child_process'
import { mkdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { directoryImageWriter } from '../../snapshot/atomic-file.ts'
import { SnapshotStore } from '../../snapshot/store.ts'
import { crashImage } from './fixtures/crash-image.ts'
import { type Fixture, fixture, seededBytes } from './helpers.ts'

const WRITER = fileURLToPath(new URL('./fixtures/crash-writer.ts', import.meta.url))
const KILLS = 50
const STORES = 2
let f: Fixture

beforeAll(async () => {
  f = await fixture({ threads: 0 })
})
afterAll(async () => {
  await f.cleanup()
})

/** Start a writer, let it run a random while after it is ready, SIGKILL it; the ids it finished. */
async function runAndKill(storeDir: string, first: number, delay_ms: number): Promise<Map<string, number>> {
  const done = new Map<string, number>()
  const child: ChildProcess = spawn(
    process.execPath,
    ['--import', 'tsx', WRITER, storeDir, f.dir, String(first)],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  )
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  let buffer = ''
  await new Promise<void>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`writer exited early (${code})`)))
    child.stdout!.on('data', (data: Buffer) => {
      buffer += data.toString()
      const lines = buffer.split('\n')
      buffer = lines.pop()!
      for (const line of lines) {
        if (line === 'ready')
          setTimeout(() => {
            child.kill('SIGKILL')
            resolve()
          }, delay_ms)
        const match = /^done (\S+) (\d+)$/.exec(line)
        if (match) done.set(match[1]!, Number(match[2]))
      }
    })
  })
  await exited
  return done
}

async function expectIntact(store: SnapshotStore, id: string, generation: number): Promise<void> {
  const out = join(f.dir, 'restored')
  await store.restore(id, directoryImageWriter(out))
  const expected = crashImage(generation)
  for (const [name, bytes] of Object.entries(expected))
    expect((await readFile(join(out, name))).equals(bytes)).toBe(true)
}

describe('crash in the middle of a write', () => {
  it(`${KILLS} SIGKILLs at random points leave every earlier snapshot intact`, async () => {
    const random = seededBytes(2026, KILLS * 4)
    const finished = Array.from({ length: STORES }, () => new Map<string, number>())
    const work = Array.from({ length: STORES }, async (_, s) => {
      const storeDir = join(f.dir, `store-${s}`)
      await mkdir(storeDir, { recursive: true })
      for (let i = s; i < KILLS; i += STORES) {
        const delay_ms = random.readUInt32LE(i * 4) % 400
        const done = await runAndKill(storeDir, i * 1000, delay_ms)
        for (const [id, generation] of done) {
          // Re-insert so the map's order is the order of the latest report, even if an id recurs.
          finished[s]!.delete(id)
          finished[s]!.set(id, generation)
        }
      }
    })
    await Promise.all(work)
    let checked = 0
    for (let s = 0; s < STORES; s++) {
      const store = await SnapshotStore.open(join(f.dir, `store-${s}`), f.pool)
      expect(store.skipped).toEqual([])
      const present = new Set(store.listSnapshots().map((info) => info.id))
      // The newest finished snapshots were not collected (retain_newest 4): all must be there.
      const newest = [...finished[s]!.keys()].slice(-2)
      for (const id of newest) {
        const report = `store ${s}: ${id} reported done but missing; present: ${[...present].join(' ')}`
        expect(present.has(id), report).toBe(true)
      }
      for (const info of store.listSnapshots()) {
        const generation = finished[s]!.get(info.id)
        if (generation === undefined) continue // finished just as it was killed, never reported
        // A derived base may be caught mid-materialization: incomplete, never wrong.
        if (!(await store.isComplete(info.id))) {
          expect(info.derived_from).not.toBeNull()
          continue
        }
        expect((await store.verify(info.id)).ok).toBe(true)
        await expectIntact(store, info.id, generation)
        checked++
      }
    }
    expect(checked).toBeGreaterThan(STORES)
  }, 120_000)
})
