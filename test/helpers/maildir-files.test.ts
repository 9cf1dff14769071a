import { mkdir, readdir, readFile, stat, utimes, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { archiveFiles, mergeFiles } from '../../helpers/files.ts'
import { archiveMaildir, mergeMaildir, parseMaildirName } from '../../helpers/maildir.ts'
import { chunked, collect, tempDir } from './fixtures.ts'

const FORK_MS = Date.UTC(2026, 10, 23, 12, 0, 0)
const MIN = 60_000

async function put(path: string, text: string, mtime_ms: number): Promise<void> {
  await mkdir(join(path, '..'), { recursive: true })
  await writeFile(path, text)
  await utimes(path, mtime_ms / 1000, mtime_ms / 1000)
}

async function maildir(root: string, files: Record<string, [string, number]>): Promise<void> {
  for (const sub of ['cur', 'new', 'tmp']) await mkdir(join(root, sub), { recursive: true })
  for (const [path, [text, mtime_ms]] of Object.entries(files)) await put(join(root, path), text, mtime_ms)
}

async function listing(root: string): Promise<string[]> {
  const out: string[] = []
  for (const folder of ['', '.Sent']) {
    for (const sub of ['cur', 'new']) {
      for (const name of await readdir(join(root, folder, sub)).catch(() => []))
        out.push(join(folder, sub, name))
    }
  }
  return out.sort()
}

describe('Maildir merge', () => {
  it('adds new messages, unions flags of messages on both sides, never resurrects deletions; idempotent', async () => {
    const dir = await tempDir()
    const winner = join(dir, 'w')
    const loser = join(dir, 'l')
    const old = FORK_MS - 10 * MIN
    await maildir(winner, {
      'cur/100.M1.host:2,S': ['common seen', old],
      'new/101.M2.host': ['common new', old],
      'cur/300.M1.w:2,': ['winner after fork', FORK_MS + MIN],
    })
    await maildir(loser, {
      'cur/100.M1.host:2,FR': ['common seen', old],
      'cur/101.M2.host:2,S': ['common new', old],
      'cur/102.M3.host:2,S': ['deleted on the winner', old],
      'new/400.M1.l': ['loser after fork', FORK_MS + 2 * MIN],
      '.Sent/cur/401.M2.l:2,S': ['sent by loser', FORK_MS + 3 * MIN],
    })
    const data = await collect((out) => archiveMaildir({ root: loser, since_ms: FORK_MS, out }))
    expect(await mergeMaildir({ root: winner, input: chunked(data, 100) })).toEqual({
      added: 2,
      flags_updated: 2,
      present: 0,
    })
    const expected = [
      '.Sent/cur/401.M2.l:2,S',
      'cur/100.M1.host:2,FRS',
      'cur/101.M2.host:2,S',
      'cur/300.M1.w:2,',
      'new/400.M1.l',
    ]
    expect(await listing(winner)).toEqual(expected)
    expect(await readFile(join(winner, 'new/400.M1.l'), 'utf8')).toBe('loser after fork')
    expect((await stat(join(winner, 'new/400.M1.l'))).mtimeMs).toBe(FORK_MS + 2 * MIN)
    expect(await readdir(join(winner, 'tmp'))).toEqual([])
    expect(await mergeMaildir({ root: winner, input: chunked(data, 100) })).toEqual({
      added: 0,
      flags_updated: 0,
      present: 4, // the flags record of the message deleted here counts as nothing
    })
    expect(await listing(winner)).toEqual(expected)
  })

  it('parses names with and without flags', () => {
    expect(parseMaildirName('1.M2.h:2,SRF')).toEqual({ unique: '1.M2.h', flags: 'FRS' })
    expect(parseMaildirName('1.M2.h')).toEqual({ unique: '1.M2.h', flags: '' })
  })
})

describe('generic files merge', () => {
  it('union of files; last writer wins by mtime, the other version kept renamed; idempotent', async () => {
    const dir = await tempDir()
    const winner = join(dir, 'w')
    const loser = join(dir, 'l')
    const old = FORK_MS - 10 * MIN
    await put(join(winner, 'same.txt'), 'same', old)
    await put(join(loser, 'same.txt'), 'same', FORK_MS + MIN)
    await put(join(winner, 'only-loser-changed'), 'v1', old)
    await put(join(loser, 'only-loser-changed'), 'v2 from loser', FORK_MS + MIN)
    await put(join(winner, 'both-loser-newer'), 'winner edit', FORK_MS + MIN)
    await put(join(loser, 'both-loser-newer'), 'loser edit', FORK_MS + 2 * MIN)
    await put(join(winner, 'both-winner-newer'), 'winner edit', FORK_MS + 3 * MIN)
    await put(join(loser, 'both-winner-newer'), 'loser edit', FORK_MS + 2 * MIN)
    await put(join(loser, 'sub/dir/new-file'), 'created on loser', FORK_MS + MIN)
    await put(join(loser, 'unchanged-old'), 'not archived', old)
    await put(join(winner, 'only-winner'), 'stays', FORK_MS + MIN)

    const data = await collect((out) => archiveFiles({ root: loser, since_ms: FORK_MS, out }))
    const run = () =>
      mergeFiles({ root: winner, input: chunked(data, 50), since_ms: FORK_MS, peer_label: 'node b' })
    expect(await run()).toEqual({ added: 1, replaced: 1, conflicts: 2, unchanged: 1 })
    const read = (name: string) => readFile(join(winner, name), 'utf8')
    expect(await read('only-loser-changed')).toBe('v2 from loser')
    expect(await read('both-loser-newer')).toBe('loser edit')
    expect(await read(`both-loser-newer.sustain-conflict-local-${FORK_MS + MIN}`)).toBe('winner edit')
    expect(await read('both-winner-newer')).toBe('winner edit')
    expect(await read(`both-winner-newer.sustain-conflict-node_b-${FORK_MS + 2 * MIN}`)).toBe('loser edit')
    expect(await read('sub/dir/new-file')).toBe('created on loser')
    expect(await read('only-winner')).toBe('stays')
    await expect(read('unchanged-old')).rejects.toThrow()
    const before = (await readdir(winner, { recursive: true })).sort()
    const again = await run()
    expect(again.added + again.replaced).toBe(0)
    expect((await readdir(winner, { recursive: true })).sort()).toEqual(before)
    expect(await read('both-loser-newer')).toBe('loser edit')
  })
})
