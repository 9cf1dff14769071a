import { appendFile, mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type { Capture } from '../../src/drivers/driver.ts'
import { type Fixture, fixture } from './fixtures.ts'

let f: Fixture
beforeEach(async () => {
  f = await fixture()
})
afterEach(async () => {
  await f.cleanup()
})

function partPath(capture: Capture, name: string): string {
  const part = capture.parts.find((p) => p.name === name)
  if (!part || !('path' in part)) throw new Error(`no file part ${name}`)
  return part.path
}

const names = (capture: Capture) => capture.parts.map((p) => p.name)

describe('process driver capture', () => {
  it('copies what changed, hard-links what did not, drops what is gone; reports the pause', async () => {
    const driver = await f.driver({ helper: undefined })
    await driver.start()
    await mkdir(join(f.state_dir, 'sub'), { recursive: true })
    await writeFile(join(f.state_dir, 'a'), 'a1')
    await writeFile(join(f.state_dir, 'sub', 'b'), 'b1')
    await writeFile(join(f.state_dir, 'c'), 'c1')
    // Old enough that no timestamp is within the racy window.
    await new Promise((resolve) => setTimeout(resolve, 120))
    const first = await driver.capture()
    expect(names(first)).toEqual(['a', 'c', 'sub/b'])
    expect(first.pause_ms).toBeGreaterThan(0)
    expect(first.pause_ms).toBeLessThan(1000)
    expect(await readFile(partPath(first, 'a'), 'utf8')).toBe('a1')

    await appendFile(join(f.state_dir, 'a'), '+more')
    await rm(join(f.state_dir, 'c'))
    await writeFile(join(f.state_dir, 'd'), 'd1')
    const second = await driver.capture()
    expect(names(second)).toEqual(['a', 'd', 'sub/b'])
    expect(await readFile(partPath(second, 'a'), 'utf8')).toBe('a1+more')
    expect(await readFile(partPath(first, 'a'), 'utf8')).toBe('a1') // the earlier capture is untouched
    const b1 = await stat(partPath(first, 'sub/b'))
    const b2 = await stat(partPath(second, 'sub/b'))
    expect(b2.ino).toBe(b1.ino) // unchanged: a hard link, not a copy
    expect(b2.nlink).toBeGreaterThanOrEqual(2)
    expect((await stat(partPath(second, 'a'))).ino).not.toBe((await stat(partPath(first, 'a'))).ino)
    // The live state is never linked into a capture (the service would write through it).
    expect((await stat(partPath(second, 'a'))).ino).not.toBe((await stat(join(f.state_dir, 'a'))).ino)

    const first_dir = partPath(first, 'a').slice(0, -2)
    await first.release()
    await expect(stat(first_dir)).rejects.toThrow(/ENOENT/)
    await second.release() // the newest stays on disk as the reference for the next capture
    expect((await stat(partPath(second, 'a'))).isFile()).toBe(true)
    const third = await driver.capture()
    expect(await readFile(partPath(third, 'a'), 'utf8')).toBe('a1+more')
    await third.release()
    await expect(stat(partPath(second, 'a'))).rejects.toThrow(/ENOENT/)
    expect(f.records.filter((r) => r['event'] === 'service_paused')).toHaveLength(3)
  })

  it('a same-size rewrite right after a capture is still seen (coarse timestamps)', async () => {
    const driver = await f.driver({ helper: undefined })
    await driver.start()
    await mkdir(f.state_dir, { recursive: true })
    for (let round = 0; round < 20; round++) {
      await writeFile(join(f.state_dir, 'x'), `v${String(round).padStart(3, '0')}`)
      const capture = await driver.capture()
      expect(await readFile(partPath(capture, 'x'), 'utf8')).toBe(`v${String(round).padStart(3, '0')}`)
      await capture.release()
    }
  })

  it('without pre-copy every change lands in the pause, with the same result', async () => {
    const driver = await f.driver({ helper: undefined }, { precopy: false })
    await driver.start()
    await mkdir(f.state_dir, { recursive: true })
    await writeFile(join(f.state_dir, 'k'), 'k1')
    await writeFile(join(f.state_dir, 'l'), 'l1')
    await new Promise((resolve) => setTimeout(resolve, 120))
    const first = await driver.capture()
    await writeFile(join(f.state_dir, 'k'), 'k2!')
    const second = await driver.capture()
    expect(await readFile(partPath(second, 'k'), 'utf8')).toBe('k2!')
    expect((await stat(partPath(second, 'l'))).ino).toBe((await stat(partPath(first, 'l'))).ino)
    const paused = f.records.filter((r) => r['event'] === 'service_paused')
    expect(paused[1]?.['copied_files']).toBe(1)
  })

  it('a stopped service is captured without a pause; quiesce and resume run around the pause', async () => {
    const quiet = await f.driver({ env: { QUIESCE: 'yes' } })
    await mkdir(f.state_dir, { recursive: true })
    await writeFile(join(f.state_dir, 'healthy'), '')
    const stopped = await quiet.capture()
    expect(stopped.pause_ms).toBe(0)
    expect(names(stopped)).toEqual(['healthy'])
    await quiet.start()
    await quiet.capture()
    await quiet.stop('test')
    const calls = (await readFile(f.helper_log, 'utf8'))
      .split('\n')
      .filter((verb) => verb && verb !== 'probe')
    expect(calls).toEqual(['quiesce', 'resume'])

    await writeFile(f.helper_log, '')
    const unsupported = await f.driver() // quiesce exits 64: not supported, so no resume either
    await unsupported.start()
    await unsupported.capture()
    await unsupported.capture() // an unknown verb is not asked again
    const calls2 = (await readFile(f.helper_log, 'utf8'))
      .split('\n')
      .filter((verb) => verb && verb !== 'probe')
    expect(calls2).toEqual(['quiesce'])
  })

  it('restoring through stateWriter replaces the state, only while stopped', async () => {
    const driver = await f.driver({ helper: undefined })
    await driver.start()
    expect(() => driver.stateWriter()).toThrow(/only while the service is stopped/)
    await writeFile(join(f.state_dir, 'old'), 'old')
    await driver.capture()
    await driver.stop('restore')
    const writer = driver.stateWriter()
    const part = await writer.openPart('mail/alice')
    await part.write(Buffer.from('restored'))
    await part.commit()
    await writer.commit()
    expect(await readFile(join(f.state_dir, 'mail', 'alice'), 'utf8')).toBe('restored')
    await expect(stat(join(f.state_dir, 'old'))).rejects.toThrow(/ENOENT/)
    await driver.start()
    const after = await driver.capture()
    expect(names(after)).toEqual(['mail/alice'])
    expect(await readFile(partPath(after, 'mail/alice'), 'utf8')).toBe('restored')
  })

  it('names a capture that found nothing changed as the same as the one before (output commit)', async () => {
    const driver = await f.driver({ helper: undefined })
    await driver.start()
    await mkdir(join(f.state_dir, 'mail'), { recursive: true })
    await writeFile(join(f.state_dir, 'mail', 'alice'), 'one\n')
    await new Promise((resolve) => setTimeout(resolve, 120)) // out of the racy window
    const first = await driver.capture()
    expect(first.generation).toBeDefined()
    const second = await driver.capture()
    expect(second.same_as).toBe(first.generation) // nothing copied, grown or removed
    const third = await driver.capture()
    expect(third.same_as).toBe(second.generation) // a chain of unchanged captures
    await appendFile(join(f.state_dir, 'mail', 'alice'), 'two\n')
    const grown = await driver.capture()
    expect(grown.same_as).toBeUndefined()
    await new Promise((resolve) => setTimeout(resolve, 120))
    const settled = await driver.capture() // the racy growth is copied once more: not "the same" yet
    const quiet = settled.same_as === undefined ? await driver.capture() : settled
    expect(quiet.same_as).toBeDefined()
    await writeFile(join(f.state_dir, 'new'), 'x')
    expect((await driver.capture()).same_as).toBeUndefined()
    await rm(join(f.state_dir, 'new'))
    expect((await driver.capture()).same_as).toBeUndefined() // a removal is a change
  })

  it('asked whether the state is still that of a capture, answers without a freeze and without copying', async () => {
    const driver = await f.driver({ helper: undefined })
    await driver.start()
    await writeFile(join(f.state_dir, 'a'), 'a1')
    await new Promise((resolve) => setTimeout(resolve, 120))
    const first = await driver.capture()
    let frozen = 0
    const same = await driver.capture({ same_as: first.generation!, onFrozen: () => frozen++ })
    expect(same).toMatchObject({ parts: [], parts_omitted: true, same_as: first.generation, pause_ms: 0 })
    expect(frozen).toBe(1) // the mark, before the state is read
    await appendFile(join(f.state_dir, 'a'), '+2')
    const changed = await driver.capture({ same_as: first.generation!, onFrozen: () => frozen++ })
    expect(changed.parts_omitted).toBeUndefined()
    expect(changed.same_as).toBeUndefined()
    expect(await readFile(partPath(changed, 'a'), 'utf8')).toBe('a1+2')
    expect(changed.pause_ms).toBeGreaterThan(0)
    expect(frozen).toBe(3) // the check's mark, then one freeze that marks again and copies the small change
    // A generation that is not the newest is never "the same".
    expect((await driver.capture({ same_as: first.generation! })).parts_omitted).toBeUndefined()
  })

  it('asked for a capture that finds much changed, thaws and takes a full capture with a freeze of its own', async () => {
    const driver = await f.driver({ helper: undefined })
    await driver.start()
    await writeFile(join(f.state_dir, 'a'), 'a1')
    await new Promise((resolve) => setTimeout(resolve, 120))
    const first = await driver.capture()
    let frozen = 0
    await writeFile(join(f.state_dir, 'big'), Buffer.alloc(2 * 1024 * 1024, 7)) // above the same-freeze bound
    const changed = await driver.capture({ same_as: first.generation!, onFrozen: () => frozen++ })
    expect(changed.parts_omitted).toBeUndefined()
    expect((await readFile(partPath(changed, 'big'))).equals(Buffer.alloc(2 * 1024 * 1024, 7))).toBe(true)
    expect(await readFile(partPath(changed, 'a'), 'utf8')).toBe('a1')
    expect(frozen).toBe(2) // the check's mark, then the full capture's freeze (after a pre-copy)
  })

  it('a service whose helper quiesces always gets a full capture (the quiesce may write state)', async () => {
    const quiet = await f.driver({ env: { QUIESCE: 'yes' } })
    await quiet.start()
    await writeFile(join(f.state_dir, 'a'), 'a1')
    const first = await quiet.capture()
    const again = await quiet.capture({ same_as: first.generation! })
    expect(again.parts_omitted).toBeUndefined()
    expect(names(again)).toContain('a')
    await quiet.stop('test')
  })

  it('a capture after a restore is never the same as one from before it, even of an empty state', async () => {
    const driver = await f.driver({ helper: undefined })
    await driver.start()
    await writeFile(join(f.state_dir, 'old'), 'old')
    await new Promise((resolve) => setTimeout(resolve, 120))
    const before = await driver.capture()
    await driver.stop('restore')
    const writer = driver.stateWriter() // an empty image
    await writer.commit()
    await driver.start()
    const after = await driver.capture()
    expect(names(after)).toEqual([])
    expect(after.same_as).toBeUndefined()
    expect(after.generation).not.toBe(before.generation)
  })

  it('the service is stopped during the copy and running again after it', async () => {
    const driver = await f.driver({ helper: undefined }, { precopy: false })
    await driver.start()
    await mkdir(f.state_dir, { recursive: true })
    for (let i = 0; i < 8; i++)
      await writeFile(join(f.state_dir, `big-${i}`), Buffer.alloc(2 * 1024 * 1024, i))
    const pid = driver.pid!
    const state = async () => (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]?.[0] ?? '?'
    const seen = new Set<string>()
    let watching = true
    const watcher = (async () => {
      for (let i = 0; watching && i < 100_000; i++) seen.add(await state())
    })()
    const capture = await driver.capture()
    watching = false
    await watcher
    expect(seen.has('T')).toBe(true)
    expect(await state()).not.toBe('T')
    expect(capture.parts).toHaveLength(8)
  })
})
