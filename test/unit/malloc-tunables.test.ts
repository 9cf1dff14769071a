import { execFileSync } from 'node:child_process'
import { describe, expect, it } from 'vitest'
import { MALLOC_TUNABLES, mallocTunablesActive, withMallocTunables } from '../../src/util/malloc-tunables.ts'

/** The values glibc's loader parses from `env` (it ignores a misspelt tunable without a word). */
function parsed(env: NodeJS.ProcessEnv): Record<string, number> {
  const out = execFileSync('/lib64/ld-linux-x86-64.so.2', ['--list-tunables'], { env, encoding: 'utf8' })
  const values: Record<string, number> = {}
  for (const match of out.matchAll(/^(glibc\.malloc\.\w+): (0x[0-9a-f]+)/gm))
    values[match[1]!] = Number(match[2])
  return values
}

describe('malloc tunables (src/util/malloc-tunables.ts)', () => {
  it('adds the settings to GLIBC_TUNABLES and keeps what an operator set', () => {
    expect(withMallocTunables({})['GLIBC_TUNABLES']).toBe(MALLOC_TUNABLES.join(':'))
    const own = withMallocTunables({ GLIBC_TUNABLES: 'glibc.malloc.trim_threshold=1:glibc.pthread.rseq=0' })
    expect(own['GLIBC_TUNABLES']).toBe(
      'glibc.malloc.trim_threshold=1:glibc.pthread.rseq=0:glibc.malloc.mmap_threshold=33554432:glibc.malloc.arena_max=2',
    )
    expect(mallocTunablesActive({})).toBe(false)
    expect(mallocTunablesActive({ GLIBC_TUNABLES: 'glibc.pthread.rseq=0' })).toBe(false)
    expect(mallocTunablesActive(own)).toBe(true)
    expect(mallocTunablesActive(withMallocTunables({}))).toBe(true)
  })

  it("are names and values that this machine's glibc applies", () => {
    const { GLIBC_TUNABLES: _, ...plain } = process.env
    expect(parsed(plain)['glibc.malloc.mmap_threshold']).toBe(0) // 0: glibc's dynamic default
    const tuned = parsed(withMallocTunables(plain))
    expect(tuned['glibc.malloc.mmap_threshold']).toBe(32 * 1024 * 1024)
    expect(tuned['glibc.malloc.trim_threshold']).toBe(64 * 1024 * 1024)
    expect(tuned['glibc.malloc.arena_max']).toBe(2)
  })
})
