import { allRuns, keepRun, readResults } from '../lib/results-file.ts'
import type { RunMeta } from '../lib/run-meta.ts'
import type { FaultsJson } from '../render/faults.ts'
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

/** Keeps the run in faults.json (a scale-only run keeps the previous fault runs) and renders RESULTS.md. */
export async function writeFaultResults(json: FaultsJson): Promise<void> {
  const newest = allRuns(await readResults<FaultsJson>('faults.json')).at(-1)
  const previous = newest ? loadsAsNumbers(newest) : null
  const merged: FaultsJson = {
    ...json,
    runs: json.runs.length > 0 ? json.runs : (previous?.runs ?? []),
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
    })
  }
  // The lab records its commit, date, command and loads itself; rounds = runs per fault kind.
  await keepRun('faults.json', merged as FaultsJson & RunMeta)
  await renderResults()
}
