import { readFile } from 'node:fs/promises'
import type { PersistedState } from '../core/node.ts'

/** The core's persisted state (the highest term seen); a missing file is a new node. */
export async function readPersisted(path: string): Promise<PersistedState> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { term: 0 }
    throw error
  }
  const parsed = JSON.parse(text) as { term?: unknown }
  if (!Number.isSafeInteger(parsed.term) || (parsed.term as number) < 0) {
    throw new Error(`${path} is corrupt: term ${JSON.stringify(parsed.term)}`)
  }
  return { term: parsed.term as number }
}
