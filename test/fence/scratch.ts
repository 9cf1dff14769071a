import { chmod, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach } from 'vitest'
import { type StandIn, stopStandIns } from './remnants.ts'

/** A stand-in node's log record saying its service answers. */
export const answering = (r: Record<string, unknown>) => r['event'] === 'driver' && r['kind'] === 'answering'

/**
 * Per-test scratch of the fence tests: the stand-in nodes a test starts and the temp directories it
 * makes, all stopped and removed after each test (on every exit path of the test).
 */
export function fenceScratch(prefix: string, mode?: number) {
  const stand_ins: StandIn[] = []
  const cleanups: (() => Promise<void>)[] = []
  afterEach(async () => {
    await stopStandIns(stand_ins)
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
  })
  return {
    stand_ins,
    /** Run after the test, newest first. */
    cleanups,
    async tempDir(): Promise<string> {
      const dir = await mkdtemp(join(tmpdir(), prefix))
      cleanups.push(() => rm(dir, { recursive: true, force: true }))
      if (mode !== undefined) await chmod(dir, mode)
      return dir
    },
  }
}
