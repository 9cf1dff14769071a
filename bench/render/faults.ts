import { FAULTS_METHOD, type FaultsJson, renderFaults } from '../faults/faults-results.ts'
import type { Section } from './section.ts'

export const faultsSection: Section<FaultsJson> = {
  file: 'faults.json',
  heading: 'Fault lab',
  method: FAULTS_METHOD,
  render: (run) => `${run.nodes} nodes, seed ${run.seed}.\n\n${renderFaults(run)}`,
  // The lab records commit, date, command and loads; its rounds are the runs of each fault kind.
  legacy: (run) => {
    const perKind = new Map<string, number>()
    for (const r of run.runs) perKind.set(r.fault, (perKind.get(r.fault) ?? 0) + 1)
    return { rounds: Math.min(...perKind.values()) }
  },
  summary: (run) => {
    const lost = run.runs.reduce((s, r) => s + (r.lost ?? 0), 0)
    const dup = run.runs.reduce((s, r) => s + (r.duplicated ?? 0), 0)
    return `${run.date}, commit ${run.commit}, load ${run.load_before?.[0] ?? '?'}: ${run.runs.length} runs, ${lost} lost, ${dup} duplicated`
  },
}
