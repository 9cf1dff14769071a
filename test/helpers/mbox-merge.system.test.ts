import { spawn } from 'node:child_process'
import { chmod, chown, mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { ArchiveError, readArchive } from '../../helpers/archive.ts'
import { mboxRecord, parseMbox } from '../../helpers/mbox/format.ts'
import { dotlockPath, lockMailbox, takeDotlock } from '../../helpers/mbox/lock.ts'
import { archiveMboxSpool, mergeMboxSpool } from '../../helpers/mbox/spool.ts'
import { requireTools } from '../system/requirements.ts'
import { chunked, collect, deliver, messageText, type TestMessage, tempDir } from './fixtures.ts'
import { readMboxWithPython } from './python-mbox.ts'

const FORK_MS = Date.UTC(2026, 10, 23, 12, 0, 0)
const MIN = 60_000

async function archive(spool: string, since_ms = FORK_MS, skew_ms?: number): Promise<Buffer> {
  return collect((out) =>
    archiveMboxSpool({ spool_dir: spool, since_ms, out, ...(skew_ms === undefined ? {} : { skew_ms }) }),
  )
}

async function merge(spool: string, data: Buffer, chunk_bytes = 64 * 1024) {
  await mkdir(spool, { recursive: true })
  return mergeMboxSpool({ spool_dir: spool, input: chunked(data, chunk_bytes) })
}

async function subjects(spool: string, mailbox: string): Promise<string[]> {
  return (await readMboxWithPython(join(spool, mailbox))).map((m) => m.subject ?? '')
}

/** Both sides share `common` (before the fork), then each gets its own messages. */
async function sides(
  common: TestMessage[],
  winner_only: TestMessage[],
  loser_only: TestMessage[],
  box = 'alice',
) {
  const dir = await tempDir()
  const winner = join(dir, 'winner')
  const loser = join(dir, 'loser')
  await deliver(winner, box, [...common, ...winner_only])
  await deliver(loser, box, [...common, ...loser_only])
  return { winner, loser }
}

const msg = (subject: string, minutes_after_fork: number, id: string | null = subject): TestMessage => ({
  subject,
  time_ms: FORK_MS + minutes_after_fork * MIN,
  ...(id === null ? {} : { id: `${id}@example.org` }),
})

describe('mbox spool merge', () => {
  it('adds the other side’s messages since the fork, in date order, each once', async () => {
    const { winner, loser } = await sides(
      [msg('old-1', -30), msg('old-2', -20)],
      [msg('w-1', 1), msg('w-3', 3), msg('w-5', 5)],
      [msg('l-2', 2), msg('l-4', 4), msg('l-6', 6)],
    )
    const data = await archive(loser)
    const records = []
    for await (const record of readArchive(chunked(data, 7))) records.push(record.header)
    expect(records.map((r) => r.path)).toEqual(['alice', 'alice', 'alice'])
    const stats = await merge(winner, data)
    expect(stats).toMatchObject({ added: 3, duplicates: 0, mailboxes: 1 })
    expect(await subjects(winner, 'alice')).toEqual([
      'old-1',
      'old-2',
      'w-1',
      'l-2',
      'w-3',
      'l-4',
      'w-5',
      'l-6',
    ])
  })

  it('is idempotent: a second merge of the same archive changes nothing, not even the file', async () => {
    const { winner, loser } = await sides([msg('old', -5)], [msg('w', 1)], [msg('l', 2)])
    const data = await archive(loser)
    await merge(winner, data)
    const once = await readFile(join(winner, 'alice'))
    const inode = (await stat(join(winner, 'alice'))).ino
    expect(await merge(winner, data)).toMatchObject({ added: 0, duplicates: 1 })
    expect(await readFile(join(winner, 'alice'))).toEqual(once)
    expect((await stat(join(winner, 'alice'))).ino).toBe(inode)
  })

  it('empty sides: nothing to archive, nothing merged; an empty winner takes everything', async () => {
    const dir = await tempDir()
    const empty = join(dir, 'empty')
    await mkdir(empty)
    const nothing = await archive(empty)
    expect(nothing.toString()).toBe('SUSTAIN-ARCHIVE 1\n{"end":true,"records":0}\n')
    const other = join(dir, 'other')
    await deliver(other, 'bob', [msg('b-1', 1)])
    expect(await merge(other, nothing)).toMatchObject({ added: 0, mailboxes: 0 })
    expect(await subjects(other, 'bob')).toEqual(['b-1'])
    await merge(empty, await archive(other))
    expect(await subjects(empty, 'bob')).toEqual(['b-1'])
    // A missing spool directory archives as empty too.
    expect((await archive(join(dir, 'missing'))).toString()).toBe(nothing.toString())
  })

  it('identical sides: every archived message is a duplicate', async () => {
    const same = [msg('a', 1), msg('b', 2), msg('c', 3, null)]
    const { winner, loser } = await sides(same, [], [])
    const before = await readFile(join(winner, 'alice'))
    expect(await merge(winner, await archive(loser))).toMatchObject({ added: 0, duplicates: 3 })
    expect(await readFile(join(winner, 'alice'))).toEqual(before)
  })

  it('the same Message-ID on both sides is kept once (the winner’s copy), even if the copies differ', async () => {
    const { winner, loser } = await sides(
      [],
      [{ ...msg('hello', 1, 'shared'), body: 'winner copy\n' }],
      [{ ...msg('hello', 1, 'shared'), body: 'loser copy, other Received headers\n' }, msg('l', 2)],
    )
    expect(await merge(winner, await archive(loser))).toMatchObject({ added: 1, duplicates: 1 })
    const read = await readMboxWithPython(join(winner, 'alice'))
    expect(read.map((m) => m.body)).toEqual(['winner copy\n', 'body of l\n'])
  })

  it('messages without Message-ID are told apart by a hash of their content', async () => {
    const { winner, loser } = await sides(
      [msg('no-id-common', -1, null)],
      [msg('no-id-w', 1, null)],
      [msg('no-id-l', 2, null), { ...msg('no-id-l', 2, null), body: 'other body\n' }],
    )
    const data = await archive(loser)
    expect(await merge(winner, data)).toMatchObject({ added: 2, duplicates: 1 })
    expect(await merge(winner, data)).toMatchObject({ added: 0, duplicates: 3 })
    expect(await subjects(winner, 'alice')).toEqual(['no-id-common', 'no-id-w', 'no-id-l', 'no-id-l'])
  })

  it('mailboxes only on one side are created (owner of the spool, mode 0600) or left alone', async () => {
    const dir = await tempDir()
    const winner = join(dir, 'winner')
    const loser = join(dir, 'loser')
    await deliver(winner, 'only-winner', [msg('w', 1)])
    await deliver(loser, 'only-loser', [msg('l', 1)])
    await chown(winner, 4242, 4343)
    expect(await merge(winner, await archive(loser))).toMatchObject({ added: 1, mailboxes: 1 })
    expect(await subjects(winner, 'only-winner')).toEqual(['w'])
    expect(await subjects(winner, 'only-loser')).toEqual(['l'])
    const created = await stat(join(winner, 'only-loser'))
    expect([created.uid, created.gid, created.mode & 0o777]).toEqual([4242, 4343, 0o600])
    expect((await readdir(winner)).sort()).toEqual(['only-loser', 'only-winner']) // no temp, no lock left
  })

  it('keeps the mailbox’s owner and mode when it rewrites it', async () => {
    const { winner, loser } = await sides([], [msg('w', 1)], [msg('l', 2)])
    await chown(join(winner, 'alice'), 5000, 5001)
    await chmod(join(winner, 'alice'), 0o640)
    await merge(winner, await archive(loser))
    const after = await stat(join(winner, 'alice'))
    expect([after.uid, after.gid, after.mode & 0o777]).toEqual([5000, 5001, 0o640])
  })

  it('quotes From lines in bodies correctly through archive and merge', async () => {
    const body = 'From the start\n>From quoted already\nFrom: not a header here\nFrom\n'
    const { winner, loser } = await sides([], [msg('w', 1)], [{ ...msg('quoted', 2), body }])
    await merge(winner, await archive(loser))
    const text = await readFile(join(winner, 'alice'), 'utf8')
    expect(text).toContain('\n>From the start\n>>From quoted already\n'.replace('>>From', '>From'))
    const ours = parseMbox(text)
    expect(ours).toHaveLength(2)
    expect(
      ours[1]!.text.endsWith('\n\nFrom the start\nFrom quoted already\nFrom: not a header here\nFrom\n'),
    ).toBe(true)
    const python = await readMboxWithPython(join(winner, 'alice'))
    expect(python.map((m) => m.subject)).toEqual(['w', 'quoted'])
  })

  it('clock skew: the loser’s messages stamped up to a minute before the fork are carried; older ones are not', async () => {
    // The loser's clock runs 59 s slow: a message it received just after the fork is stamped before it.
    const { winner, loser } = await sides(
      [msg('before-fork', -2)],
      [],
      [{ subject: 'skewed', id: 'skewed@x', time_ms: FORK_MS - 59_000 }, msg('after', 1)],
    )
    const data = await archive(loser)
    const carried = []
    for await (const record of readArchive(chunked(data, 1 << 20))) carried.push(record.header.mtime_ms)
    expect(carried).toEqual([FORK_MS - 59_000, FORK_MS + MIN]) // before-fork (-2 min) is outside the margin
    await merge(winner, data)
    expect(await subjects(winner, 'alice')).toEqual(['before-fork', 'skewed', 'after'])
    // With the margin at zero the skewed message would be lost: the margin is what covers skew.
    expect((await archive(loser, FORK_MS, 0)).toString()).not.toContain('skewed@x')
  })

  it('a cut archive fails, merges only the mailboxes it held whole; the retry completes without duplicates', async () => {
    const dir = await tempDir()
    const winner = join(dir, 'winner')
    const loser = join(dir, 'loser')
    for (const box of ['a', 'b', 'c']) {
      await deliver(winner, box, [msg(`${box}-w`, 1)])
      await deliver(loser, box, [msg(`${box}-l1`, 2), msg(`${box}-l2`, 3)])
    }
    const data = await archive(loser)
    const cut = data.subarray(0, data.indexOf('c-l2@example.org'))
    await expect(merge(winner, cut)).rejects.toThrow(ArchiveError)
    expect(await subjects(winner, 'a')).toEqual(['a-w', 'a-l1', 'a-l2'])
    expect(await subjects(winner, 'c')).toEqual(['c-w']) // c was not whole: untouched
    expect(await merge(winner, data)).toMatchObject({ added: 2, duplicates: 4 })
    for (const box of ['a', 'b', 'c'])
      expect(await subjects(winner, box)).toEqual([`${box}-w`, `${box}-l1`, `${box}-l2`])
  })

  it('refuses an archive record that is not an mbox message, and a file that is not an mbox', async () => {
    const dir = await tempDir()
    const bad = Buffer.from(
      'SUSTAIN-ARCHIVE 1\n{"path":"x","mtime_ms":0,"size_bytes":5}\nhello\n{"end":true,"records":1}\n',
    )
    await expect(merge(join(dir, 's'), bad)).rejects.toThrow(/not an mbox message/)
    const escaping = Buffer.from(
      'SUSTAIN-ARCHIVE 1\n{"path":"../x","mtime_ms":0,"size_bytes":0}\n\n{"end":true,"records":1}\n',
    )
    await expect(merge(join(dir, 's'), escaping)).rejects.toThrow(/unsafe/)
    await writeFile(join(dir, 's', 'alice'), 'not an mbox\n')
    const good = await collect(async (out) => {
      await deliver(join(dir, 'l'), 'alice', [msg('m', 1)])
      await archiveMboxSpool({ spool_dir: join(dir, 'l'), since_ms: FORK_MS, out })
    })
    await expect(merge(join(dir, 's'), good)).rejects.toThrow(/not an mbox/)
    expect(await readFile(join(dir, 's', 'alice'), 'utf8')).toBe('not an mbox\n')
  })

  it('10,000 messages across 10 mailboxes merge exactly once each, in order', async () => {
    const dir = await tempDir()
    const winner = join(dir, 'winner')
    const loser = join(dir, 'loser')
    for (let box = 0; box < 10; box++) {
      const w: TestMessage[] = []
      const l: TestMessage[] = []
      for (let i = 0; i < 500; i++) {
        w.push({ subject: `w${box}-${i}`, id: `w${box}-${i}@x`, time_ms: FORK_MS + 2 * i * 1000 })
        l.push({ subject: `l${box}-${i}`, id: `l${box}-${i}@x`, time_ms: FORK_MS + (2 * i + 1) * 1000 })
      }
      await deliver(winner, `box${box}`, w)
      await deliver(loser, `box${box}`, l)
    }
    const data = await archive(loser)
    expect(await merge(winner, data)).toMatchObject({ added: 5000, duplicates: 0, mailboxes: 10 })
    expect(await merge(winner, data)).toMatchObject({ added: 0, duplicates: 5000 })
    for (const box of [0, 9]) {
      const got = await subjects(winner, `box${box}`)
      expect(got).toHaveLength(1000)
      expect(got.slice(0, 4)).toEqual([`w${box}-0`, `l${box}-0`, `w${box}-1`, `l${box}-1`])
      expect(new Set(got).size).toBe(1000)
    }
  })

  it('a delivery that comes while a mailbox is merged waits for the lock and is kept', async () => {
    const { winner, loser } = await sides([], [msg('w', 1)], [msg('l', 2)])
    const path = join(winner, 'alice')
    const data = await archive(loser)
    // Hold the lock as the merge would, start the merge (it must wait), deliver as the server does.
    const held = await lockMailbox(path)
    const merging = merge(winner, data)
    let merged = false
    void merging.then(() => {
      merged = true
    })
    await new Promise((ok) => setTimeout(ok, 100))
    expect(merged).toBe(false) // the merge waits for the lock
    await held.release()
    const unlock = await takeDotlock(dotlockPath(path), performance.now() + 10_000) // a delivery after it
    await writeFile(path, mboxRecord('x@y', new Date(FORK_MS + 3 * MIN), messageText(msg('late', 3))), {
      flag: 'a',
    })
    await unlock()
    await merging
    expect(await subjects(winner, 'alice')).toEqual(['w', 'l', 'late'])
  })

  it('concurrent deliveries under the dotlock during a merge are never lost', async () => {
    const { winner, loser } = await sides(
      [],
      [msg('w', 0)],
      Array.from({ length: 200 }, (_, i) => msg(`l${i}`, 1)),
    )
    const path = join(winner, 'alice')
    const data = await archive(loser)
    const deliveries = (async () => {
      for (let i = 0; i < 50; i++) {
        const unlock = await takeDotlock(dotlockPath(path), performance.now() + 10_000)
        await writeFile(path, mboxRecord('x@y', new Date(FORK_MS + 2 * MIN), messageText(msg(`d${i}`, 2))), {
          flag: 'a',
        })
        await unlock()
        await new Promise((ok) => setImmediate(ok))
      }
    })()
    await Promise.all([merge(winner, data), merge(winner, data), deliveries])
    const got = await subjects(winner, 'alice')
    expect(got).toHaveLength(1 + 200 + 50)
    expect(new Set(got).size).toBe(251)
  })

  it('holds an fcntl lock that other programs (Python’s fcntl.lockf) see', async () => {
    requireTools('python3')
    const { winner } = await sides([], [msg('w', 1)], [])
    const path = join(winner, 'alice')
    const tryLock = () =>
      new Promise<number | null>((resolve) => {
        const script =
          'import fcntl,sys\nf=open(sys.argv[1],"r+")\ntry:\n  fcntl.lockf(f, fcntl.LOCK_EX|fcntl.LOCK_NB)\nexcept OSError:\n  sys.exit(3)'
        spawn('python3', ['-c', script, path], { stdio: 'ignore' }).on('close', resolve)
      })
    const lock = await lockMailbox(path)
    expect(await tryLock()).toBe(3)
    expect((await stat(`${path}.lock`)).isFile()).toBe(true)
    await lock.release()
    expect(await tryLock()).toBe(0)
    await expect(stat(`${path}.lock`)).rejects.toThrow()
  })
})
