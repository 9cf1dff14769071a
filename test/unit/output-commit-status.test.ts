import { describe, expect, it } from 'vitest'
import { OutputCommit } from '../../src/frontdoor/output-commit.ts'
import { OutputGate } from '../../src/frontdoor/output-gate.ts'
import { formatStatus, outputCommitLine } from '../../src/runtime/format-status.ts'
import { KEYS, status } from '../tui/recorded-stream.ts'

const settle = () => new Promise((resolve) => setImmediate(resolve))

describe('sustain status shows output commit', () => {
  const base = () => status({ role: 'server', term: 1, server: KEYS.n1, snapshot: null }, [])

  it('off, and k on a node that does not serve', () => {
    expect(formatStatus(base())).toContain('output commit: off')
    const s = base()
    s.output_commit = { k: 2 }
    expect(outputCommitLine(s)).toBe('output commit: k=2')
  })

  it('what the gates hold now, the last release and the covered captures, from OutputCommit', async () => {
    const commit = new OutputCommit(() => {})
    const gate = new OutputGate(commit)
    gate.on('data', () => {})
    expect(commit.stats()).toMatchObject({ held_bytes: 0, connections: 1, last_release_ms_ago: null })
    gate.write('250 queued\r\n')
    await settle()
    commit.frozen('s1')
    gate.write('221 bye\r\n')
    await settle()
    expect(commit.stats()).toMatchObject({ held_bytes: 21, held_chunks: 2 })
    commit.release('s1')
    commit.frozen('s2')
    commit.cover('s2', 's1')
    await settle()
    const stats = commit.stats()
    expect(stats).toMatchObject({ held_bytes: 0, held_chunks: 0, released_chunks: 2, covered_captures: 1 })
    expect(stats.last_release_ms_ago).toBeGreaterThanOrEqual(0)
    const s = base()
    s.output_commit = { k: 1, ...stats }
    expect(outputCommitLine(s)).toMatch(
      /^output commit: k=1, holding 0 bytes on 1 connection\(s\); last release \d+ ms ago \(freeze to release \d+ ms\); 1 capture\(s\) covered/,
    )
  })
})
