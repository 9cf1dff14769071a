import { readFile } from 'node:fs/promises'
import type { PersistedState } from '../core/node.ts'

export interface PersistedFile extends PersistedState {
  /** Every member this node has heard of (refuse-to-split counts majorities of them). */
  members: string[]
}

/** The core's persisted state (highest term seen, members heard of); a missing file is a new node. */
export async function readPersisted(path: string): Promise<PersistedFile> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { term: 0, members: [] }
    throw error
  }
  const parsed = JSON.parse(text) as { term?: unknown; members?: unknown }
  if (!Number.isSafeInteger(parsed.term) || (parsed.term as number) < 0) {
    throw new Error(`${path} is corrupt: term ${JSON.stringify(parsed.term)}`)
  }
  const members = parsed.members ?? []
  if (!Array.isArray(members) || !members.every((m) => typeof m === 'string' && /^[0-9a-f]{64}$/.test(m))) {
    throw new Error(`${path} is corrupt: members must be a list of 64-digit hex keys`)
  }
  return { term: parsed.term as number, members }
}
