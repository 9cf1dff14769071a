import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { installedVersion } from '../../../overlay/hypercore-patches/check.ts'
import {
  checkVersions,
  installHypercorePatches,
  PATCHES,
  PatchError,
  WriterFirst,
} from '../../../overlay/hypercore-patches/index.ts'
import { type Internals, probeInternals } from '../../../overlay/hypercore-patches/internals.ts'
import type { HypercorePatch } from '../../../overlay/hypercore-patches/patch.ts'

const patch = (name: string): HypercorePatch => PATCHES.find((p) => p.name === name)!

/** A copy of `instance` (own fields) on a prototype derived from its class, with changes to either. */
function altered(instance: object, fields: Record<string, unknown>, methods: Record<string, unknown> = {}) {
  const proto = Object.assign(Object.create(Object.getPrototypeOf(instance)), methods)
  return Object.assign(Object.create(proto), instance, fields) as object
}

describe('hypercore patches fail loudly at start on a version or internals they were not written for', () => {
  let probe: Awaited<ReturnType<typeof probeInternals>>
  let real: Internals
  beforeAll(async () => {
    probe = await probeInternals()
    real = probe.internals
  })
  afterAll(() => probe.close())

  it('reads the installed versions from the resolved package.json files, which are the ones written for', () => {
    expect(installedVersion('hypercore')).toBe('11.37.1')
    expect(installedVersion('@hyperswarm/secret-stream')).toBe('6.9.2')
    expect(() => checkVersions()).not.toThrow()
  })

  it('another hypercore or secret-stream version stops the start, naming the patch', () => {
    expect(() => checkVersions((pkg) => (pkg === 'hypercore' ? '11.38.0' : '6.9.2'))).toThrow(
      /hypercore patch keep-tree-nodes: written for hypercore 11\.37\.1, but 11\.38\.0 is installed/,
    )
    expect(() => checkVersions((pkg) => (pkg === 'hypercore' ? '11.37.1' : '6.10.0'))).toThrow(
      /secret-stream-frames: written for @hyperswarm\/secret-stream 6\.9\.2, but 6\.10\.0/,
    )
  })

  it('every patch passes its checks on the real internals', () => {
    for (const p of PATCHES) expect(() => p.check(real), p.name).not.toThrow()
  })

  const cases: [string, string, (r: Internals) => Internals][] = [
    [
      'upgrade-sync',
      'Peer.syncsProcessing',
      (r) => ({ ...r, peer: altered(r.peer, { syncsProcessing: undefined }) }),
    ],
    ['upgrade-sync', 'Peer.needsSync', (r) => ({ ...r, peer: altered(r.peer, { needsSync: 0 }) })],
    [
      'upgrade-sync',
      'Peer._updateCanUpgradeAndSync',
      (r) => ({ ...r, peer: altered(r.peer, {}, { _updateCanUpgradeAndSync: null }) }),
    ],
    ['upgrade-sync', 'Peer.core.state.length', (r) => ({ ...r, peer: altered(r.peer, { core: {} }) })],
    ['serve-cache', 'Peer._getProof', (r) => ({ ...r, peer: altered(r.peer, {}, { _getProof: undefined }) })],
    [
      'serve-cache',
      'CoreRX.getBlock',
      (r) => {
        const core = (r.peer as { core: object }).core
        const storage = { read: () => ({ destroy() {} }) }
        return { ...r, peer: altered(r.peer, { core: altered(core, { storage }) }) }
      },
    ],
    ['lane-window', 'Peer.stream.rawStream', (r) => ({ ...r, peer: altered(r.peer, { stream: {} }) })],
    ['writer-first', 'Peer.remoteLength', (r) => ({ ...r, peer: altered(r.peer, { remoteLength: '3' }) })],
    [
      'writer-first',
      'Peer.getMaxHotswapInflight',
      (r) => ({ ...r, peer: altered(r.peer, {}, { getMaxHotswapInflight: 1 }) }),
    ],
    [
      'writer-first',
      'Hypercore.core.replicator._blocks.isEmpty',
      (r) => ({ ...r, core: { peers: [], on() {}, core: { replicator: { updateAll() {} } } } as never }),
    ],
    [
      'keep-tree-nodes',
      'SessionState.createWriteBatch',
      (r) => ({ ...r, SessionState: { prototype: { clear() {} } } }),
    ],
    [
      'keep-tree-nodes',
      'CoreTX.deleteTreeNode',
      (r) => ({ ...r, core: { state: { storage: { write: () => ({}) } } } as never }),
    ],
    [
      'secret-stream-frames',
      'SecretStream._write',
      (r) => ({ ...r, SecretStream: { prototype: { alloc() {} } } }),
    ],
    [
      'secret-stream-frames',
      '_outgoingPlain/_outgoingWrapped',
      (r) => ({
        ...r,
        secretStream: {
          alloc: () => Buffer.alloc(1),
          _outgoingPlain: null,
          _outgoingWrapped: Buffer.alloc(8),
        },
      }),
    ],
  ]
  for (const [name, field, alter] of cases) {
    it(`${name} refuses internals without ${field}`, () => {
      let thrown: unknown = null
      try {
        patch(name).check(alter(real))
      } catch (error) {
        thrown = error
      }
      expect(thrown).toBeInstanceOf(PatchError)
      expect((thrown as PatchError).patch).toBe(name)
      expect((thrown as Error).message).toContain(`overlay/hypercore-patches/${name}.ts`)
      expect((thrown as Error).message).toContain(field.split('/')[0]!.split('.').at(-1))
    })
  }
})

describe('writer-first never throws inside its timer', () => {
  beforeAll(() => installHypercorePatches())

  it('a renamed internal found at run time disables the policy once, with the error, and stops its timer', () => {
    vi.useFakeTimers()
    try {
      let reads = 0
      const core = {
        closed: false,
        length: 0,
        on() {},
        get peers() {
          reads += 1
          if (reads > 1) throw new TypeError('peers is not iterable')
          return []
        },
      }
      const disabled: unknown[] = []
      new WriterFirst(core as never, {
        writer: 'ab'.repeat(32),
        stall_ms: 1000,
        urgent_stall_ms: 100,
        wanting: () => true,
        onDisabled: (error) => disabled.push(error),
      })
      expect(disabled).toEqual([])
      vi.advanceTimersByTime(250) // the first tick reads the renamed field
      expect(disabled).toHaveLength(1)
      expect((disabled[0] as Error).message).toBe('peers is not iterable')
      vi.advanceTimersByTime(5000)
      expect(disabled).toHaveLength(1)
      expect(reads).toBe(2) // no tick ran after it
    } finally {
      vi.useRealTimers()
    }
  })
})
