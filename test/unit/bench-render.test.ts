import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { allRuns, RESULTS_DIR, readResults } from '../../bench/lib/results-file.ts'
import { failoverSection } from '../../bench/render/failover.ts'
import { renderSection, resultsText } from '../../bench/render/results-md.ts'
import { SECTIONS } from '../../bench/render/sections.ts'

/** Sample counts a rendered sentence or table row states: "60 samples", "(100 per path)", "50 captures". */
const COUNT = /(\d+) (?:samples|captures|snapshots|runs|per path|transactions|leaves)\b/g

/**
 * Every "p99" used as a figure (not in "target p99" or "too few for a p99") must stand in the same
 * sentence or table row as its sample count, and that count must be at least 100.
 */
function unsupportedP99(text: string): string[] {
  return text
    .split(/\n|\.\s+(?=[A-Z`])/)
    .filter((unit) => /\bp99\b/.test(unit.replace(/target p99|for a p99/g, '')))
    .filter((unit) => {
      const counts = [...unit.matchAll(COUNT)].map((m) => Number(m[1]))
      return counts.length === 0 || Math.min(...counts) < 100
    })
}

describe('bench/RESULTS.md from bench/results/*.json (bench/render)', () => {
  it('renders a section for every results file, each with its run line, and no p99 over fewer than 100 samples', async () => {
    const files = (await readdir(RESULTS_DIR)).filter((f) => f.endsWith('.json')).sort()
    expect(files.length).toBeGreaterThan(0)
    expect(SECTIONS.map((s) => s.file).sort()).toEqual(files)
    for (const section of SECTIONS) {
      const text = await renderSection(section)
      expect(text, section.file).not.toBeNull()
      expect(text!.startsWith(`## ${section.heading}\n`), section.file).toBe(true)
      expect(text, section.file).toMatch(/^`npm run (bench|faults)[^`]*`, /m)
      expect(text, section.file).not.toMatch(/undefined|NaN|\[object Object\]/)
      expect(unsupportedP99(text!), section.file).toEqual([])
      // Every run kept (legacy shapes included) gives its one-line summary, as bench:compare prints it.
      for (const run of allRuns(await readResults<object>(section.file)))
        expect(section.summary?.(run) ?? '', section.file).not.toMatch(/undefined|NaN|\[object Object\]/)
    }
  })

  it('bench/RESULTS.md as committed is exactly what npm run bench:render makes of the JSON', async () => {
    const committed = await readFile(join(RESULTS_DIR, '..', 'RESULTS.md'), 'utf8')
    expect(committed === (await resultsText()), 'bench/RESULTS.md differs: run npm run bench:render').toBe(
      true,
    )
  })

  it('calls the tail of 20 runs the maximum, and gives a p99 only with 100 samples', () => {
    const sample = (answer_ms: number) => ({ detect_ms: 500, elect_ms: 520, restore_ms: 540, answer_ms })
    const keepalived = { runs: 20, takeover_p50_ms: 1, takeover_p95_ms: 1, takeover_p99_ms: 1, version: 'x' }
    const run = (pauses: number) => ({
      nodes: 5,
      quick: false,
      samples: {
        sigkill: Array.from({ length: 20 }, (_, i) => sample(800 + i)),
        sigstop: Array.from({ length: 20 }, (_, i) => sample(900 + i)),
        service_crash: Array.from({ length: 20 }, (_, i) => sample(300 + i)),
      },
      snapshot_pause_ms: { n: pauses, median: 2, min: 1, max: 90, p99: pauses >= 100 ? 70 : null },
      peers: { keepalived: { ...keepalived, samples_ms: Array.from({ length: 20 }, () => 3000) } },
    })
    const few = failoverSection.render(run(60))
    expect(few).toContain('(mail state dir, 60 snapshots): median 2 ms, max 90 ms.')
    expect(few).toContain(
      '| server SIGKILL | 20 | 500 (500-500) | 520 (520-520) | 540 (540-540) | 809.5 (800-819) |',
    )
    expect(unsupportedP99(few)).toEqual([])
    expect(failoverSection.render(run(330))).toContain('330 snapshots): median 2 ms, p99 70, max 90 ms.')
    expect(unsupportedP99('| detection p99 (20 runs) | 800 |\n| latency p99 (100 per path) | 5 |')).toEqual([
      '| detection p99 (20 runs) | 800 |',
    ])
  })
})
