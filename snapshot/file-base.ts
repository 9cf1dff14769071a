import { stat } from 'node:fs/promises'
import type { BaseChunk, BaseSource } from './encode.ts'
import type { ImagePart } from './image.ts'

/**
 * A plain image on disk as a base: chunk `index` of a part is the span at index * chunk_bytes, read by the
 * codec thread that needs it (not here).
 */
export class FileBaseSource implements BaseSource {
  private readonly sizes = new Map<string, Promise<number>>()
  private readonly paths: Map<string, string>

  constructor(
    readonly label: string,
    parts: readonly ImagePart[],
    private readonly chunk_bytes: number,
  ) {
    this.paths = new Map(parts.flatMap((part) => ('path' in part ? [[part.name, part.path] as const] : [])))
  }

  async chunk(part: string, index: number): Promise<BaseChunk | undefined> {
    const path = this.paths.get(part)
    if (path === undefined) return undefined
    let size = this.sizes.get(part)
    if (!size) {
      size = stat(path).then((s) => s.size)
      this.sizes.set(part, size)
    }
    const offset = index * this.chunk_bytes
    const length = Math.min(this.chunk_bytes, (await size) - offset)
    if (length <= 0) return undefined
    return { bytes: { path, offset, length } }
  }

  async close(): Promise<void> {}
}
