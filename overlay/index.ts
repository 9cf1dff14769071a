export { LAST_WORDS_FLUSH_MS } from './control-plane.ts'
export {
  Federation,
  type FederationOptions,
  type HelloInfo,
  OVERLAY_PHI_OPTIONS,
  type ValidationResult,
} from './federation.ts'
export { type ControlMessage, DEFAULT_MAX_FRAME_BYTES, WIRE_VERSION } from './frames.ts'
export {
  createIdentity,
  createSecret,
  deriveTopic,
  identityFromSeed,
  type KeyPair,
  SECRET_BYTES,
} from './keys.ts'
export type { PeerDownReason, PeerEntry, PeerTableView } from './peer-table.ts'
export { PhiAccrual, type PhiAccrualOptions } from './phi-accrual.ts'
export type { BlobRecipe, Derive, RecipeStats } from './recipes.ts'
export type { CollectProgress, CollectResult, IndexEntry, PublishInput } from './snapshot-feeds.ts'
export { type SnapshotFeeds, sha256Hex, writerCoreKey } from './snapshot-feeds.ts'
export { type LocalTestnet, startTestnet } from './testnet.ts'
