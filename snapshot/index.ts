/** Public API of the snapshot engine (no network here). */
export {
  directoryImageWriter,
  fileImageWriter,
  type ImageWriter,
  nullImageWriter,
  swapDirectory,
} from './atomic-file.ts'
export { ChunkKind } from './codec.ts'
export { type CodecPool, createCodecPool } from './codec-pool.ts'
export { applyDelta, diffImages, openDeltaFile, verifyDeltaFile } from './delta-file.ts'
export type { Progress } from './encode.ts'
export {
  DEFAULT_REBASE_POLICY,
  type EngineOptions,
  type RebasePolicy,
  SnapshotEngine,
  shouldRebase,
  type TakeOptions,
  type TakeResult,
} from './engine.ts'
export { ChunkError, type ChunkLocation, type ChunkProblem, SnapshotError } from './errors.ts'
export type { HashAlg } from './hash.ts'
export { emptyHash, fromHex, HASH_ALGS, sameHash, toHex } from './hash.ts'
export { compareNewestFirst, formatSnapshotId, parseSnapshotId, type SnapshotIdParts } from './ids.ts'
export { type FilePart, type ImagePart, imageFromDirectory, imageFromFile, openImage } from './image.ts'
export { MAX_CHUNK_BYTES, PAGE_BYTES } from './limits.ts'
export {
  chunkSize,
  type DeltaRefs,
  decodeManifest,
  deltaBytes,
  deltaRefs,
  encodeManifest,
  imageBytes,
  type Manifest,
  type NeededBlob,
  neededBlobs,
} from './manifest.ts'
export { type GcStats, type SnapshotInfo, SnapshotStore, type VerifyReport } from './store.ts'
