import { randomBytes } from 'node:crypto'
import { z } from 'zod'

/** Longest channel id accepted: the id is all a server sees before it connects to its service. */
const MAX_ID_BYTES = 512

const forward_id = z
  .object({
    /** Random, so two streams between the same nodes never share a protomux id. */
    n: z.string().regex(/^[0-9a-f]{32}$/),
    /** Client port name. */
    p: z.string().regex(/^[a-z][a-z0-9-]{0,31}$/),
    /** The client's address and port, as the accepting front door saw them. */
    h: z.string().max(64),
    r: z.number().int().min(0).max(65_535),
    /** The front door's own address and port (the PROXY header's destination). */
    dh: z.string().max(64),
    dr: z.number().int().min(0).max(65_535),
  })
  .strict()

export type ForwardId = z.infer<typeof forward_id>

/** The protomux channel id of a forwarded connection: what it is for and whose it is. */
export function encodeForwardId(fields: Omit<ForwardId, 'n'>): Buffer {
  return Buffer.from(JSON.stringify({ n: randomBytes(16).toString('hex'), ...fields }))
}

/** null for anything malformed (the stream is then refused). */
export function decodeForwardId(id: Buffer | null): ForwardId | null {
  if (!id || id.byteLength > MAX_ID_BYTES) return null
  try {
    const parsed = forward_id.safeParse(JSON.parse(id.toString('utf8')))
    return parsed.success ? parsed.data : null
  } catch {
    return null
  }
}
