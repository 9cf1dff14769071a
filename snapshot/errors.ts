/** Base of every error the snapshot engine raises on purpose. */
export class SnapshotError extends Error {
  override name = 'SnapshotError'
}

export type ChunkProblem = 'missing' | 'corrupt' | 'truncated' | 'wrong-base' | 'undecodable'

export interface ChunkLocation {
  snapshot_id: string
  part: string
  index: number
}

/** A chunk that cannot be used, named by the snapshot, part and chunk index it belongs to. */
export class ChunkError extends SnapshotError {
  override name = 'ChunkError'
  constructor(
    readonly location: ChunkLocation,
    readonly problem: ChunkProblem,
    detail: string,
  ) {
    super(
      `snapshot ${location.snapshot_id} part ${JSON.stringify(location.part)} chunk ${location.index}: ${problem}: ${detail}`,
    )
  }
}

/** Thrown by the codec (which knows no snapshot ids); the caller adds the location. */
export class CodecError extends Error {
  override name = 'CodecError'
  constructor(
    readonly problem: ChunkProblem,
    message: string,
  ) {
    super(message)
  }
}
