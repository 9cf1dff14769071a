/**
 * Units and update probabilities from snapshot history (src/move/precopy-units.ts): checked against a
 * history whose changes the test itself made (ground truth), over seeded random histories.
 */
import { describe, expect, it } from 'vitest'
import { precopyOrder } from '../../src/move/precopy-plan.ts'
import {
  changedUnits,
  chunkUnitId,
  type SnapshotView,
  unitsFromSnapshots,
} from '../../src/move/precopy-units.ts'

import { seededRandom } from './seeded-random.ts'

const rng = seededRandom

const CHUNK = 1000
const hash = (n: number) => Uint8Array.of(n & 255, (n >>> 8) & 255, (n >>> 16) & 255, n >>> 24)

/** A random history: parts of random sizes, each chunk rewritten with its own probability per snapshot. */
function history(seed: number) {
  const r = rng(seed)
  let next = 1
  const parts = Array.from({ length: 1 + Math.floor(r() * 5) }, (_, k) => {
    const size_bytes = 1 + Math.floor(r() * 5500)
    const n = Math.ceil(size_bytes / CHUNK)
    return {
      name: k === 0 ? 'disk.img' : `file-${k}`,
      size_bytes,
      p: Array.from({ length: n }, () => (r() < 0.3 ? 0 : r())),
      h: Array.from({ length: n }, () => next++),
    }
  })
  const snaps: SnapshotView[] = []
  const changes = new Map<string, number>()
  const count = 2 + Math.floor(r() * 8)
  for (let s = 0; s < count; s++) {
    if (s > 0)
      for (const part of parts) {
        let fileChanged = false
        part.p.forEach((p, i) => {
          if (r() < p) {
            part.h[i] = next++
            fileChanged = true
            const id = chunkUnitId(part.name, i)
            changes.set(id, (changes.get(id) ?? 0) + 1)
          }
        })
        if (fileChanged) changes.set(part.name, (changes.get(part.name) ?? 0) + 1)
      }
    snaps.push({
      chunk_bytes: CHUNK,
      parts: parts.map((p) => ({
        name: p.name,
        size_bytes: p.size_bytes,
        chunks: p.h.map((h) => ({ h: hash(h) })),
      })),
    })
  }
  return { snaps, parts, changes, pairs: count - 1 }
}

const options = {
  chunked: (name: string) => name.endsWith('.img'),
  read_only: (name: string) => name === 'file-1',
}

describe('pre-copy units from snapshot history', () => {
  it('probabilities are the fraction of snapshot pairs each unit changed in (ground truth from the test)', () => {
    for (let seed = 1; seed <= 200; seed++) {
      const { snaps, parts, changes, pairs } = history(seed)
      const units = unitsFromSnapshots(snaps, options)
      const byId = new Map(units.map((u) => [u.id, u]))
      for (const part of parts) {
        const ids = options.chunked(part.name) ? part.h.map((_, i) => chunkUnitId(part.name, i)) : [part.name]
        // Chunk units cover the part exactly; a file is one unit of its size.
        expect(
          ids.reduce((s, id) => s + byId.get(id)!.size_bytes, 0),
          `seed ${seed}`,
        ).toBe(part.size_bytes)
        for (const id of ids) {
          const u = byId.get(id)!
          const truth = options.read_only(part.name) ? 0 : (changes.get(id) ?? 0) / pairs
          expect(u.update_probability, `seed ${seed} ${id}`).toBe(truth)
          expect(u.read_only, `seed ${seed} ${id}`).toBe(options.read_only(part.name))
        }
      }
      expect(units.length, `seed ${seed}`).toBe(byId.size)
      // The planner takes them as they are: read-only first.
      const order = precopyOrder(units)
      const firstWritten = order.findIndex((u) => !u.read_only)
      if (firstWritten >= 0)
        expect(
          order.slice(firstWritten).every((u) => !u.read_only),
          `seed ${seed}`,
        ).toBe(true)
    }
  })

  it('one snapshot gives no history; a new part or another chunk size counts as changed', () => {
    const one: SnapshotView = {
      chunk_bytes: CHUNK,
      parts: [{ name: 'a', size_bytes: 1500, chunks: [{ h: hash(1) }, { h: hash(2) }] }],
    }
    expect(unitsFromSnapshots([one], options)).toEqual([
      { id: 'a', size_bytes: 1500, read_only: false, update_probability: 0 },
    ])
    const grown: SnapshotView = {
      chunk_bytes: CHUNK,
      parts: [...one.parts, { name: 'b.img', size_bytes: 10, chunks: [{ h: hash(3) }] }],
    }
    expect([...changedUnits(one, grown, options)]).toEqual(['b.img#0'])
    const rechunked: SnapshotView = {
      ...one,
      chunk_bytes: 2 * CHUNK,
      parts: [{ ...one.parts[0]!, chunks: [{ h: hash(1) }] }],
    }
    expect([...changedUnits(one, rechunked, options)]).toEqual(['a'])
  })

  it('refuses a manifest whose chunk count does not match its size, and an empty history', () => {
    const bad: SnapshotView = {
      chunk_bytes: CHUNK,
      parts: [{ name: 'a', size_bytes: 2500, chunks: [{ h: hash(1) }] }],
    }
    expect(() => unitsFromSnapshots([bad], options)).toThrow(/1 chunks for 2500 bytes.*expected 3/)
    expect(() => unitsFromSnapshots([], options)).toThrow(/no snapshot/)
  })
})
