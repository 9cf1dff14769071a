import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { swapDirectory } from '../../snapshot/atomic-file.ts'
import { imageFromDirectory } from '../../snapshot/image.ts'
import { ConfigError } from '../../src/config/config-error.ts'
import { parseConfig } from '../../src/config/load.ts'
import type { PeerInfo } from '../../src/core/types.ts'
import { isTopCandidate, WarmStandby, warmPaths } from '../../src/runtime/warm-standby.ts'
import { type Fixture, fixture } from '../snapshot/helpers.ts'

/** A real snapshot store; each snapshot is one directory of the "service" (mail files). */
let f: Fixture
let state_dir: string

beforeEach(async () => {
  f = await fixture({ threads: 0 })
  state_dir = join(f.dir, 'service', 'state')
  await mkdir(state_dir, { recursive: true })
})
afterEach(async () => {
  await f.cleanup()
})

async function snapshotOf(files: Record<string, string>, term: number): Promise<string> {
  const src = join(f.dir, `src-${term}`)
  await rm(src, { recursive: true, force: true })
  await mkdir(src, { recursive: true })
  for (const [name, text] of Object.entries(files)) await writeFile(join(src, name), text)
  const { manifest } = await f.engine.take(await imageFromDirectory(src), { term })
  return manifest.id
}

const adopt = (dir: string) => swapDirectory(dir, state_dir)

describe('warm standby (real snapshot store, real directories)', () => {
  it('adopts the decoded copy when it is exactly the snapshot restored', async () => {
    const a = await snapshotOf({ alice: 'mail 1\n' }, 1)
    const warm = new WarmStandby({ state_dir, store: f.store, now: () => performance.now() })
    const marker = await warm.prepare('w:1:1', a)
    expect(marker).toMatchObject({ id: 'w:1:1', engine_id: a, bytes: 7 })
    const outcome = await warm.take('w:1:1', a, adopt)
    expect(outcome.used).toBe(true)
    expect(await readFile(join(state_dir, 'alice'), 'utf8')).toBe('mail 1\n')
    // Consumed: a second failover finds nothing prepared.
    expect(await warm.take('w:1:1', a, adopt)).toMatchObject({ used: false, reason: 'none' })
  })

  it('never adopts a stale copy: another snapshot id, or the same id with other content', async () => {
    const a = await snapshotOf({ alice: 'old\n' }, 1)
    const b = await snapshotOf({ alice: 'old\nnew\n' }, 2)
    const warm = new WarmStandby({ state_dir, store: f.store, now: () => performance.now() })
    await warm.prepare('w:1:1', a)
    await writeFile(join(state_dir, 'alice'), 'current\n')
    const adopted: string[] = []
    const spy = async (dir: string) => {
      adopted.push(dir)
      await adopt(dir)
    }
    expect(await warm.take('w:2:1', b, spy)).toMatchObject({ used: false, reason: 'stale', warm_id: 'w:1:1' })
    // Same core id, but the marker names another engine snapshot (e.g. a collect replaced it).
    expect(await warm.take('w:1:1', b, spy)).toMatchObject({ used: false, reason: 'stale' })
    // The marker's manifest hash no longer matches the store's.
    const { marker } = warmPaths(state_dir)
    const recorded = JSON.parse(await readFile(marker, 'utf8'))
    await writeFile(marker, JSON.stringify({ ...recorded, manifest_sha256: '00'.repeat(32) }))
    expect(await warm.take('w:1:1', a, spy)).toMatchObject({ used: false, reason: 'changed' })
    expect(adopted).toEqual([])
    expect(await readFile(join(state_dir, 'alice'), 'utf8')).toBe('current\n')
  })

  it('a decode in flight when the restore starts is abandoned, never adopted half done', async () => {
    const a = await snapshotOf({ alice: 'a\n'.repeat(50_000) }, 1)
    const warm = new WarmStandby({ state_dir, store: f.store, now: () => performance.now() })
    const preparing = warm.prepare('w:1:1', a)
    const outcome = await warm.take('w:1:1', a, adopt)
    expect(outcome.used).toBe(false)
    expect(await preparing).toBeNull()
    expect(await warm.current()).toBeNull()
    // Nothing left behind but (maybe) the abandoned directory, never a marker vouching for it.
    expect((await readdir(join(f.dir, 'service'))).filter((n) => n === 'warm.json')).toEqual([])
  })

  it('coalesces: of several snapshots asked for while one decodes, only the newest is decoded next', async () => {
    const ids = [] as string[]
    for (let t = 1; t <= 3; t++) ids.push(await snapshotOf({ alice: `v${t}\n` }, t))
    const warm = new WarmStandby({ state_dir, store: f.store, now: () => performance.now() })
    const results = await Promise.all(ids.map((id, i) => warm.prepare(`w:${i + 1}:1`, id)))
    expect(results.map((m) => m?.id ?? null)).toEqual(['w:1:1', null, 'w:3:1'])
    expect((await warm.current())?.id).toBe('w:3:1')
  })
})

describe('isTopCandidate (the core ranking, from the peer table)', () => {
  const defaults = {
    term: 1,
    load: 0,
    room_bytes: null,
    site: null,
    server: 's',
    snapshot: null,
    head: null,
    health: 'ok' as const,
  }
  const quiet = { last_heard_ms: 0, vote: null, vote_heard_ms: 0, members: 0, progress: 0, progress_ms: 0 }
  const peer = (id: string, priority: number, over: Partial<PeerInfo> = {}): PeerInfo => ({
    ...defaults,
    ...quiet,
    id,
    priority,
    reachable: true,
    role: 'candidate',
    ineligible_until_ms: 0,
    ...over,
  })
  const self = { id: 'b', priority: 20, load: 0, snapshot: null }
  it('the server and unreachable or resigned peers do not count; a higher-priority candidate does', () => {
    expect(isTopCandidate('static', self, [peer('s', 99, { role: 'server' })], 0)).toBe(true)
    expect(isTopCandidate('static', self, [peer('c', 30, { reachable: false })], 0)).toBe(true)
    expect(isTopCandidate('static', self, [peer('c', 30, { ineligible_until_ms: 10 })], 0)).toBe(true)
    expect(isTopCandidate('static', self, [peer('c', 30)], 0)).toBe(false)
    expect(isTopCandidate('static', self, [peer('c', 10)], 0)).toBe(true)
  })
})

describe('service.standby in the node config', () => {
  const config = (standby?: unknown) => ({
    version: 1,
    node: { name: 'n1' },
    federation: { name: 'f', secret: 'a'.repeat(64) },
    service: { dir: '/srv/mail', port: 2525, ...(standby === undefined ? {} : { standby }) },
  })
  it('is cold unless set to warm', () => {
    expect(parseConfig(config()).service?.standby).toBe('cold')
    expect(parseConfig(config('warm')).service?.standby).toBe('warm')
  })
  it.each(['hot', true, 1])('refuses %j, naming the field and what it takes', (value) => {
    expect(() => parseConfig(config(value))).toThrow(ConfigError)
    expect(() => parseConfig(config(value))).toThrow(
      /field service\.standby: got .* expected one of "warm"\|"cold"/,
    )
  })
})
