import { describe, expect, it } from 'vitest'
import { mergeRuns } from '../../bench/faults/faults-results.ts'
import { type FaultRecord, type FaultsJson, renderFaults } from '../../bench/render/faults.ts'

const record = (fault: string, extra: Partial<FaultRecord> = {}): FaultRecord => ({
  fault,
  seed: 1,
  output_commit: '1',
  acknowledged: 10,
  lost: 0,
  duplicated: 0,
  outage_ms: 1000,
  false_failovers: 0,
  one_server_after_heal_ms: 100,
  detection_ms: 50,
  elections: 1,
  fault_ms: 8000,
  params: {},
  ...extra,
})

const file = (commit: string, nodes: number, runs: FaultRecord[]): FaultsJson => ({
  commit,
  date: '2026-12-07T00:00:00.000Z',
  command: `npm run faults -- --nodes ${nodes}`,
  nodes,
  seed: 1,
  load_before: [1, 1, 1],
  load_after: [1, 1, 1],
  runs,
  scale: {},
})

describe('faults --merge', () => {
  it('keeps the earlier rows of other kinds, stamped with their own run, and replaces the kinds run again', () => {
    const before = file('aaa', 5, [record('loss'), record('delay', { seed: 7 })])
    const now = file('bbb', 5, [record('delay', { seed: 9, nodes: 5, commit: 'bbb' })])
    const runs = mergeRuns(before, now)
    expect(runs.map((r) => [r.fault, r.seed, r.commit, r.nodes])).toEqual([
      ['loss', 1, 'aaa', 5],
      ['delay', 9, 'bbb', 5],
    ])
  })

  it('keeps a kind run at another node count as its own row', () => {
    const before = file('aaa', 5, [record('kill-server')])
    const now = file('bbb', 20, [record('kill-server', { nodes: 20, commit: 'bbb' })])
    const merged = { ...now, runs: mergeRuns(before, now) }
    expect(merged.runs).toHaveLength(2)
    const rows = renderFaults(merged)
      .split('\n')
      .filter((line) => line.startsWith('| kill-server'))
    expect(rows.map((line) => line.split(' | ').slice(1, 2)[0])).toEqual(['5', '20'])
    expect(rows[0]).toMatch(/\| aaa \|$/)
  })
})
