import { z } from 'zod'
import { ROLES, type SnapshotRef } from './types.ts'

/**
 * Control messages between nodes. The overlay checks the envelope (version, size); these schemas check
 * every field before a message reaches the core, so the core may trust what it is given.
 */

const node_id = z.string().regex(/^[0-9a-f]{16,128}$/, 'a hex node key')
const term = z.number().int().nonnegative()
const time_ms = z.number().finite().nonnegative()

/** `capacity` election: free disk for the state (bytes) and the site label a node reports. */
const room_bytes = z.number().int().nonnegative().optional()
const site = z.string().min(1).max(64).optional()

const segment = z.object({ writer: node_id, term, seq: z.number().int().positive(), time_ms }).strict()

export const snapshot_ref = z
  .object({
    id: z.string().max(300),
    writer: node_id,
    term,
    seq: z.number().int().positive(),
    time_ms,
    size_bytes: z.number().int().nonnegative(),
    image_bytes: z.number().int().nonnegative().optional(),
    writer_site: z.string().min(1).max(64).optional(),
    lineage: z.array(segment).min(1).max(64),
    merged: z.array(segment).max(64).optional(),
  })
  .strict()
  .refine((s) => s.id === `${s.writer}:${s.term}:${s.seq}`, 'snapshot id must be writer:term:seq')

export const state_message = z
  .object({
    type: z.literal('state'),
    term,
    role: z.enum(ROLES),
    priority: z.number().finite(),
    load: z.number().finite().nonnegative(),
    room_bytes,
    site,
    server: node_id.nullable(),
    snapshot: snapshot_ref.nullable(),
    head: snapshot_ref.nullable(),
    health: z.enum(['ok', 'degraded', 'down', 'unknown']),
    /** False while the node must not be elected (it resigned recently). */
    eligible: z.boolean(),
    /** refuse-to-split: the node this one supports (its server, or the node it votes for); absent otherwise. */
    vote: node_id.nullable().optional(),
    /** refuse-to-split: how many members the sender counts (a restarted node learns the size from it). */
    members: z.number().int().positive().max(100_000).optional(),
    /** While restoring: a count that grows as the restore moves on (peers wait while it grows). */
    progress: z.number().int().nonnegative().optional(),
    /**
     * A server: forks merged into its service (heal losers' heads, dead forks) with their closures, said
     * at once rather than with its next snapshot, so no candidate takes an already merged fork for dead.
     */
    merged: z.array(segment).max(64).optional(),
  })
  .strict()

export const claim_message = z
  .object({
    type: z.literal('claim'),
    term,
    priority: z.number().finite(),
    load: z.number().finite().nonnegative(),
    room_bytes,
    site,
    snapshot: snapshot_ref.nullable(),
  })
  .strict()

export const refuse_message = z
  .object({ type: z.literal('refuse'), term, better: node_id, reason: z.string().max(500) })
  .strict()

export const resign_message = z.object({ type: z.literal('resign'), term }).strict()

export const handover_message = z
  .object({ type: z.literal('handover'), term, to: node_id, snapshot: snapshot_ref })
  .strict()

/**
 * A node stored (verified, on disk) a snapshot it did not write. Broadcast at once: the writer counts it
 * toward output commit (k candidates hold it), the others learn what a failover could restore without
 * waiting for the next state.
 */
export const stored_message = z.object({ type: z.literal('stored'), term, snapshot: snapshot_ref }).strict()

export const leaving_message = z.object({ type: z.literal('leaving'), term }).strict()

/**
 * Merge transport after a heal (runtime-level; the core only decides who merges): the loser offers an
 * archive it published to its own hypercore; the winner answers with the outcome of its merge helper.
 */
export const merge_offer_message = z
  .object({
    type: z.literal('merge-offer'),
    term,
    id: z.string().min(1).max(300),
    fork_id: z.string().max(300).nullable(),
    fork_time_ms: time_ms,
    bytes: z.number().int().nonnegative(),
    /**
     * The snapshot whose changes the archive holds: the loser's head (its live state may hold more), or
     * with `dead_fork` exactly this snapshot, materialised by a candidate after its writer died. The
     * winner records it in its lineage's merged segments; a dead fork it already holds is not applied.
     */
    head: snapshot_ref.nullable().optional(),
    dead_fork: z.boolean().optional(),
  })
  .strict()

export const merge_result_message = z
  .object({
    type: z.literal('merge-result'),
    term,
    id: z.string().min(1).max(300),
    ok: z.boolean(),
    reason: z.string().max(2000).optional(),
  })
  .strict()

export const control_message = z.discriminatedUnion('type', [
  state_message,
  claim_message,
  refuse_message,
  resign_message,
  handover_message,
  leaving_message,
  stored_message,
  merge_offer_message,
  merge_result_message,
])

export type StateMessage = z.infer<typeof state_message>
export type ClaimMessage = z.infer<typeof claim_message>
export type RefuseMessage = z.infer<typeof refuse_message>
export type ResignMessage = z.infer<typeof resign_message>
export type HandoverMessage = z.infer<typeof handover_message>
export type LeavingMessage = z.infer<typeof leaving_message>
export type StoredMessage = z.infer<typeof stored_message>
export type MergeOfferMessage = z.infer<typeof merge_offer_message>
export type MergeResultMessage = z.infer<typeof merge_result_message>
export type ControlMessage = z.infer<typeof control_message>

export type ValidationResult = { ok: true; value: ControlMessage } | { ok: false; reason: string }

/** Validates an untrusted decoded frame; the reason names the first offending field. */
export function validateControlMessage(input: unknown): ValidationResult {
  const result = control_message.safeParse(input)
  if (result.success) return { ok: true, value: result.data }
  const issue = result.error.issues[0]
  const where = issue && issue.path.length > 0 ? issue.path.join('.') : 'message'
  return { ok: false, reason: `${where}: ${issue?.message ?? 'invalid'}` }
}

// Compile-time check that the schema and the core's SnapshotRef agree.
type SchemaRef = z.infer<typeof snapshot_ref>
const _ref_check: SchemaRef extends SnapshotRef ? (SnapshotRef extends SchemaRef ? true : never) : never =
  true
void _ref_check
