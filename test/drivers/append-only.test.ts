import { describe, expect, it } from 'vitest'
import { appendOnlyMatcher } from '../../src/drivers/process/append-only.ts'
import { parseServiceManifest } from '../../src/drivers/process/manifest.ts'

const base = { version: 1, name: 's', type: 'type1', command: ['x'] }

describe('append_only globs', () => {
  it('match whole relative names: * and ? within a name, ** across directories', () => {
    const match = appendOnlyMatcher(['mail/*', 'logs/**/*.log', 'journal.?', 'a+b(1).txt'])
    expect(match('mail/alice')).toBe(true)
    expect(match('mail/sub/alice')).toBe(false)
    expect(match('mail')).toBe(false)
    expect(match('logs/x.log')).toBe(true)
    expect(match('logs/2026/12/x.log')).toBe(true)
    expect(match('logs/x.log.1')).toBe(false)
    expect(match('journal.1')).toBe(true)
    expect(match('journal.10')).toBe(false)
    expect(match('a+b(1).txt')).toBe(true)
    expect(match('aab(1).txt')).toBe(false)
    expect(appendOnlyMatcher([])('anything')).toBe(false)
  })

  it('the manifest takes relative globs only, and defaults to none', () => {
    expect(parseServiceManifest(base).append_only).toEqual([])
    expect(parseServiceManifest({ ...base, append_only: ['mail/*'] }).append_only).toEqual(['mail/*'])
    for (const bad of ['/etc/passwd', '../x', 'a//b', 'a/./b', ''])
      expect(() => parseServiceManifest({ ...base, append_only: [bad] }), bad).toThrow(/append_only/)
  })
})
