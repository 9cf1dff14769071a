import { type FileHandle, open } from 'node:fs/promises'
import { readFully, recycle, takeBuffer } from './buffers.ts'
import type { BaseChunk, BaseSource } from './encode.ts'
import type { ImagePart } from './image.ts'

/** A plain image on disk as a base: chunk `index` of a part is read at index * chunk_bytes. */
export class FileBaseSource implements BaseSource {
  private readonly handles = new Map<string, Promise<FileHandle>>()
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
    let handle = this.handles.get(part)
    if (!handle) {
      handle = open(path, 'r')
      this.handles.set(part, handle)
    }
    const bytes = takeBuffer(this.chunk_bytes)
    const filled = await readFully(await handle, bytes, index * this.chunk_bytes)
    if (filled === 0) {
      recycle(bytes)
      return undefined
    }
    return { bytes: filled === this.chunk_bytes ? bytes : Buffer.from(bytes.subarray(0, filled)) }
  }

  async close(): Promise<void> {
    for (const handle of this.handles.values()) await (await handle).close()
    this.handles.clear()
  }
}
