import { allRuns, keepRun, readResults } from '../lib/results-file.ts'
import type { RunMeta } from '../lib/run-meta.ts'
import type { FaultRecord, FaultsJson } from '../render/faults.ts'
import { renderResults } from '../render/results-md.ts'

export type { FaultRecord, FaultsJson, ScaleFigures } from '../render/faults.ts'

/** Files written before loads were recorded as numbers held them as one "1 5 15" string. */
function loadsAsNumbers(json: FaultsJson): FaultsJson {
  const fix = (load: unknown) =>
    typeof load === 'string' ? load.split(' ').map(Number) : (load as number[] | undefined)
  return {
    ...json,
    load_before: fix(json.load_before) ?? [],
    load_after: fix(json.load_after) ?? [],
    scale: {
      ...json.scale,
      load_before: fix(json.scale.load_before),
      load_after: fix(json.scale.load_after),
    },
  }
}

/**
 * The newest file's records of the kinds this run did not run (by fault, node count and output commit),
 * each stamped with its own lab run's commit and node count, then this run's records.
 */
export function mergeRuns(previous: FaultsJson, json: FaultsJson): FaultsJson['runs'] {
  const key = (r: FaultRecord, nodes: number) => `${r.fault}\u0000${r.nodes ?? nodes}\u0000${r.output_commit}`
  const fresh = new Set(json.runs.map((r) => key(r, json.nodes)))
  const kept = previous.runs
    .filter((r) => !fresh.has(key(r, previous.nodes)))
    .map((r) => ({ ...r, nodes: r.nodes ?? previous.nodes, commit: r.commit ?? previous.commit }))
  return [...kept, ...json.runs]
}

/**
 * Keeps the run in faults.json (a scale-only run keeps the previous fault runs) and renders RESULTS.md.
 * `merge`: the newest file's rows of the kinds this run did not run stay in the new newest run.
 */
export async function writeFaultResults(json: FaultsJson, merge = false): Promise<void> {
  const newest = allRuns(await readResults<FaultsJson>('faults.json')).at(-1)
  const previous = newest ? loadsAsNumbers(newest) : null
  const merging = merge && previous !== null && json.runs.length > 0
  const merged: FaultsJson = {
    ...json,
    runs: json.runs.length > 0 ? (merging ? mergeRuns(previous, json) : json.runs) : (previous?.runs ?? []),
    ...(merging ? { merged_from: [...(previous.merged_from ?? []), previous.command] } : {}),
    scale: json.scale.nodes ? json.scale : (previous?.scale ?? {}),
  }
  if (json.runs.length === 0 && previous) {
    // A scale-only run keeps the previous fault runs and the figures that describe them.
    Object.assign(merged, {
      commit: previous.commit,
      date: previous.date,
      command: previous.command,
      nodes: previous.nodes,
      seed: previous.seed,
      load_before: previous.load_before,
      load_after: previous.load_after,
      ...(previous.merged_from ? { merged_from: previous.merged_from } : {}),
    })
  }
  // The lab records its commit, date, command and loads itself; rounds = runs per fault kind.
  await keepRun('faults.json', merged as FaultsJson & RunMeta)
  await renderResults()
}
