import { Writable } from 'node:stream'
import { describe, expect, it } from 'vitest'
import { createLogger } from '../../lib/log.ts'
import { DEFAULT_CORE_CONFIG } from '../../src/core/config.ts'
import { NodeCore } from '../../src/core/node.ts'
import { logTimeline } from '../../src/runtime/timeline-log.ts'

describe('timeline log', () => {
  it('writes one JSON record per stage with a monotonic timestamp', () => {
    const lines: string[] = []
    const sink = new Writable({
      write(chunk, _enc, done) {
        lines.push(...chunk.toString().trim().split('\n'))
        done()
      },
    })
    const log = createLogger({ destination: sink })
    const node = new NodeCore({
      config: { ...DEFAULT_CORE_CONFIG, id: 'a'.repeat(64), priority: 1 },
      now_ms: 0,
    })
    const effects = [
      ...node.handle({ type: 'tick', now_ms: 2000 }),
      ...node.handle({ type: 'restore-done', ok: true, snapshot: null, now_ms: 2100 }),
      ...node.handle({ type: 'driver', kind: 'answering', now_ms: 2200 }),
    ]
    for (const e of effects) if (e.type === 'timeline') logTimeline(log, e)
    const records = lines.map((l) => JSON.parse(l))
    expect(records.map((r) => r.event)).toEqual([
      'role_changed',
      'role_changed',
      'elected',
      'role_changed',
      'restored',
      'service_answering',
    ])
    for (let i = 1; i < records.length; i++)
      expect(records[i].mono_ms).toBeGreaterThanOrEqual(records[i - 1].mono_ms)
    expect(records[2]).toMatchObject({ role: 'restoring', term: 1 })
  })
})
