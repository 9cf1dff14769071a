import { mkdir, readFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { writeFileAtomic } from '../../lib/atomic-write.ts'
import type { RunMeta } from './run-meta.ts'

export const RESULTS_DIR = resolve(import.meta.dirname, '..', 'results')

/**
 * A suite's results file: the newest run at the top level (so `jq .modes` reads today's figures) and
 * every earlier run kept under `earlier_runs`, oldest first. A run under load is never replaced by a
 * quieter one: both stay, each with its load.
 */
export type Kept<R> = R & { earlier_runs?: R[] }

export async function readResults<R extends object>(file: string): Promise<Kept<R> | null> {
  return readResultsIn(RESULTS_DIR, file)
}

/** The same from another checkout's results directory (bench:compare). */
export async function readResultsIn<R extends object>(dir: string, file: string): Promise<Kept<R> | null> {
  const text = await readFile(join(dir, file), 'utf8').catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return null
    throw error
  })
  if (text === null) return null
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch (error) {
    throw new Error(`bench/results/${file} is not valid JSON: ${(error as Error).message}`)
  }
  return fromLegacy(json) as Kept<R>
}

/**
 * Files written before every suite kept its runs: a bare array of cases (one run), or `{ runs: [...] }`
 * with nothing else (oldest first). Both read as the shape above.
 */
function fromLegacy(json: unknown): object {
  if (Array.isArray(json)) return { cases: json }
  const record = json as { runs?: unknown[] }
  if (Object.keys(record).length === 1 && Array.isArray(record.runs) && record.runs.length > 0) {
    const runs = record.runs as object[]
    return { ...runs.at(-1)!, earlier_runs: runs.slice(0, -1) }
  }
  return record
}

/** Every run in a results file, oldest first, the newest last. */
export function allRuns<R extends object>(kept: Kept<R> | null): R[] {
  if (!kept) return []
  const { earlier_runs, ...newest } = kept
  return [...(earlier_runs ?? []), newest as unknown as R]
}

/** Adds `run` (with its metadata) as the newest run of `file`, keeping the ones before it. */
export async function keepRun<R extends object>(file: string, run: R & RunMeta): Promise<Kept<R & RunMeta>> {
  const before = allRuns(await readResults<R & RunMeta>(file))
  const kept: Kept<R & RunMeta> = { ...run, earlier_runs: before }
  if (before.length === 0) delete kept.earlier_runs
  await mkdir(RESULTS_DIR, { recursive: true })
  await writeFileAtomic(join(RESULTS_DIR, file), `${JSON.stringify(kept, null, 2)}\n`)
  return kept
}
