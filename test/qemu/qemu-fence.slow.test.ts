import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { freePort } from '../../src/util/free-port.ts'
import { portOpen, processTree, startStandIn, waitRecord, waitServiceGone } from '../fence/remnants.ts'
import { answering, fenceScratch } from '../fence/scratch.ts'
import { type GuestFixture, guestFixture, readCounter } from './guest.ts'

const BOOT_TIMEOUT_MS = 180_000
const GONE_TIMEOUT_MS = 5000

let f: GuestFixture
beforeAll(async () => {
  f = await guestFixture()
})
afterAll(async () => {
  await f?.cleanup()
})
const { stand_ins } = fenceScratch('sustain-qemu-fence-')

describe('a QEMU guest never outlives its node', () => {
  for (const scope of ['pid', 'group'] as const) {
    it(`SIGKILL of the node's ${scope} while a client reads the guest: QEMU ends, its port closes`, async () => {
      const data_dir = join(f.dir, `node-${scope}`)
      const port = await freePort()
      const stand_in = await startStandIn(f.service_dir, data_dir, port, stand_ins, BOOT_TIMEOUT_MS)
      await waitRecord(stand_in, answering, BOOT_TIMEOUT_MS, 'answering')
      let reading = true
      let reads = 0
      const load = (async () => {
        for (let i = 0; reading && i < 100_000; i++) {
          await readCounter(port).then(
            () => reads++,
            () => {},
          )
        }
      })()
      try {
        while (reads < 2) await new Promise((resolve) => setTimeout(resolve, 20))
        const tree = processTree(stand_in.leader)
        const names = await Promise.all(
          [...tree.keys()].map((pid) => readFile(`/proc/${pid}/comm`, 'utf8').catch(() => '')),
        )
        expect(names.some((name) => name.startsWith('qemu-system'))).toBe(true)
        const killed_at = performance.now()
        process.kill(scope === 'pid' ? stand_in.child.pid! : -stand_in.child.pid!, 'SIGKILL')
        await waitServiceGone(tree, data_dir, port, killed_at, GONE_TIMEOUT_MS)
        expect(await portOpen(port)).toBe(false)
      } finally {
        reading = false
        await load
      }
    })
  }
})
