import { chmod, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { createLogger } from '../../lib/log.ts'
import type { HelperResult } from '../../src/drivers/driver.ts'
import { runHelper } from '../../src/drivers/process/run-helper.ts'
import { HelperInfo } from '../../src/runtime/helper-info.ts'
import { tempDir } from './fixtures.ts'

/** A shell helper (a real child process) that logs every `info` call's context, or answers `exit_code`. */
async function shellHelper(exit_code: number, snapshot_interval_ms = 0) {
  const dir = await tempDir()
  const path = join(dir, 'helper.sh')
  const log = join(dir, 'calls')
  await writeFile(
    path,
    `#!/bin/sh\n[ "$1" = info ] || exit 64\necho "$SUSTAIN_SPLIT $SUSTAIN_NEWEST_SNAPSHOT_MS $SUSTAIN_ALL_ONLINE_MS $SUSTAIN_CONTROL_SOCKET" >> "${log}"\nexit ${exit_code}\n`,
  )
  await chmod(path, 0o755)
  const finished: Promise<HelperResult>[] = []
  const info = new HelperInfo({
    run: (verb, args, options) => {
      const run = runHelper({ path, cwd: dir, env: {} }, verb, args, options)
      finished.push(run)
      return run
    },
    control_socket: '/run/node.sock',
    log: createLogger({ level: 'silent' }),
    snapshot_interval_ms,
  })
  const calls = async () => {
    // Every call started so far has ended (and its successors started) once the list stops growing.
    for (let seen = -1; seen !== finished.length; ) {
      seen = finished.length
      await Promise.all(finished)
    }
    return (await readFile(log, 'utf8').catch(() => '')).split('\n').filter(Boolean)
  }
  return { info, calls }
}

describe('helper info', () => {
  it('is told of splits, heals and newer snapshots, once per change, with the context in its env', async () => {
    const { info, calls } = await shellHelper(0)
    info.update({ split: false, newest_snapshot_ms: 1000, all_online_ms: 5000 })
    info.update({ split: false, newest_snapshot_ms: 1000, all_online_ms: 6000 }) // not a change
    await calls()
    info.update({ split: true, newest_snapshot_ms: 1000, all_online_ms: 6000 })
    await calls()
    info.update({ split: true, newest_snapshot_ms: 2000, all_online_ms: 6000 })
    await calls()
    info.update({ split: false, newest_snapshot_ms: 2000, all_online_ms: 9000 })
    expect(await calls()).toEqual([
      '0 1000 5000 /run/node.sock',
      '1 1000 6000 /run/node.sock',
      '1 2000 6000 /run/node.sock',
      '0 2000 9000 /run/node.sock',
    ])
  })

  it('changes during a call coalesce into one call with the latest state', async () => {
    const { info, calls } = await shellHelper(0)
    info.update({ split: false, newest_snapshot_ms: null, all_online_ms: null })
    for (let t = 1; t <= 20; t++)
      info.update({ split: t % 2 === 0, newest_snapshot_ms: t, all_online_ms: null })
    expect(await calls()).toEqual(['0   /run/node.sock', '1 20  /run/node.sock'])
  })

  it('a helper without info (exit 64) is not asked again; a failing one is asked at the next change', async () => {
    const unsupported = await shellHelper(64)
    unsupported.info.update({ split: true, newest_snapshot_ms: 1, all_online_ms: null })
    await unsupported.calls()
    unsupported.info.update({ split: false, newest_snapshot_ms: 2, all_online_ms: null })
    expect(await unsupported.calls()).toHaveLength(1)

    const failing = await shellHelper(1)
    failing.info.update({ split: true, newest_snapshot_ms: 1, all_online_ms: null })
    await failing.calls()
    failing.info.update({ split: false, newest_snapshot_ms: 2, all_online_ms: null })
    expect(await failing.calls()).toHaveLength(2)
  })

  it('newer snapshots alone are paced; a split goes out at once, carrying the newest snapshot', async () => {
    const { info, calls } = await shellHelper(0, 60_000)
    info.update({ split: false, newest_snapshot_ms: 1, all_online_ms: 1 })
    await calls()
    for (let t = 2; t <= 5; t++) info.update({ split: false, newest_snapshot_ms: t, all_online_ms: t })
    info.update({ split: true, newest_snapshot_ms: 6, all_online_ms: 5 })
    expect(await calls()).toEqual(['0 1 1 /run/node.sock', '1 6 5 /run/node.sock'])
    info.close()
  })
})
