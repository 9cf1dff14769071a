import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { HEAP_FLAGS, heapFlagsActive, withHeapFlags } from '../../src/util/heap-flags.ts'

describe('heap flags (src/util/heap-flags.ts)', () => {
  it('puts the flags first and keeps what an operator gave', () => {
    expect(withHeapFlags()).toEqual(HEAP_FLAGS)
    expect(withHeapFlags(['--cpu-prof'])).toEqual([...HEAP_FLAGS, '--cpu-prof'])
    // V8 spells flags with - or _; an operator's own value wins either way.
    expect(withHeapFlags(['--initial_old_space_size=256'])).toEqual(['--initial_old_space_size=256'])
    expect(heapFlagsActive([])).toBe(false)
    expect(heapFlagsActive(['--cpu-prof'])).toBe(false)
    expect(heapFlagsActive(withHeapFlags(['--cpu-prof']))).toBe(true)
    expect(heapFlagsActive(['--initial_old_space_size=256'])).toBe(true)
  })

  it('node accepts them, and the sustain command starts with them', () => {
    const argv = execFileSync(process.execPath, [...HEAP_FLAGS, '-p', 'JSON.stringify(process.execArgv)'], {
      encoding: 'utf8',
    })
    expect(JSON.parse(argv).slice(0, HEAP_FLAGS.length)).toEqual(HEAP_FLAGS)
    // bin/sustain.js runs through its shebang (npx, a unit's ExecStart): the flags must be there.
    const shebang = readFileSync(new URL('../../bin/sustain.js', import.meta.url), 'utf8').split('\n')[0]
    expect(shebang).toBe(`#!/usr/bin/env -S node ${HEAP_FLAGS.join(' ')}`)
  })
})
