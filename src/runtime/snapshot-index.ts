import { readFile } from 'node:fs/promises'
import { Packr } from 'msgpackr'
import { writeFileAtomic } from '../../lib/atomic-write.ts'
import type { SnapshotRef } from '../core/types.ts'

/**
 * Which engine snapshot (snapshot/ store id) holds which core snapshot (the federation-wide ref with its
 * lineage). The engine names snapshots its own way; the core's ref is what travels in messages. Kept in
 * one msgpack file written atomically, so a node restarted on its data dir knows what it holds.
 */
interface Entry {
  ref: SnapshotRef
  engine_id: string
}

const packr = new Packr({ useRecords: false })

export class SnapshotIndex {
  private readonly entries = new Map<string, Entry>()

  private constructor(private readonly path: string) {}

  static async open(path: string): Promise<SnapshotIndex> {
    const index = new SnapshotIndex(path)
    const bytes = await readFile(path).catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return null
      throw error
    })
    if (bytes !== null) {
      const list = packr.unpack(bytes) as Entry[]
      if (!Array.isArray(list)) throw new Error(`${path} is not a snapshot index`)
      for (const entry of list) index.entries.set(entry.ref.id, entry)
    }
    return index
  }

  has(id: string): boolean {
    return this.entries.has(id)
  }

  engineId(id: string): string | undefined {
    return this.entries.get(id)?.engine_id
  }

  refs(): SnapshotRef[] {
    return [...this.entries.values()].map((e) => e.ref)
  }

  async add(ref: SnapshotRef, engine_id: string): Promise<void> {
    this.entries.set(ref.id, { ref, engine_id })
    await this.save()
  }

  async remove(ids: Iterable<string>): Promise<void> {
    for (const id of ids) this.entries.delete(id)
    await this.save()
  }

  private async save(): Promise<void> {
    await writeFileAtomic(this.path, packr.pack([...this.entries.values()]))
  }
}

/** What a server publishes per snapshot: the core's ref and the engine's manifest bytes. */
export function packPublished(ref: SnapshotRef, manifest: Uint8Array): Uint8Array {
  return packr.pack({ v: 1, ref, manifest })
}

export function unpackPublished(bytes: Uint8Array): { ref: SnapshotRef; manifest: Uint8Array } {
  const body = packr.unpack(bytes) as { v?: number; ref?: SnapshotRef; manifest?: Uint8Array }
  if (body?.v !== 1 || !body.ref || !(body.manifest instanceof Uint8Array)) {
    throw new Error('published snapshot wrapper is malformed')
  }
  return { ref: body.ref, manifest: body.manifest }
}
