import { isIP } from 'node:net'
import { Packr } from 'msgpackr'

/**
 * Wire format of both planes: every protomux message is one frame
 *   [version u8][kind u8][msgpack body]
 * The control plane's channel carries Hello, Ping and Control; the data plane's admission channel
 * carries one Admit, after which that connection replicates hypercores. The body is checked here
 * (size, shape) before anything else looks at it; a frame that fails closes the connection that
 * carried it.
 */

export const WIRE_VERSION = 2
export const CONTROL_PROTOCOL = 'sustain/control'
export const ADMISSION_PROTOCOL = 'sustain/admission'
export const DEFAULT_MAX_FRAME_BYTES = 64 * 1024

export enum FrameKind {
  /** Admission proof plus static hello info; must be the first frame on a connection. */
  Hello = 1,
  /** Overlay keep-alive with the sender's role and term; feeds the failure detector. */
  Ping = 2,
  /** A control message for the core (validated by the caller's `validate`). */
  Control = 3,
  /** Admission proof on a data-plane connection; must be its only frame. */
  Admit = 4,
}

export interface HelloBody {
  proof: Uint8Array
  /** The sender's identity public key and its signature binding this control connection to it. */
  identity: Uint8Array
  binding: Uint8Array
  name: string
  priority: number
  role: string
  term: number
  /** TCP port of the sender's data lane (lane.ts), reached at the address this connection comes from. */
  lane_port?: number
  /** The sender's front door address ('' : it listens on every address; use this connection's). */
  front_door?: string
  /** As in PingBody. */
  published?: number
}

export interface AdmitBody {
  proof: Uint8Array
}

export interface PingBody {
  role: string
  term: number
  /**
   * Length of the sender's snapshot core after its last whole publish (its last block is an index); a
   * peer reads that index instead of guessing from the tail, which mid-publish is a blob (store.ts).
   */
  published?: number
}

/** A control message: a plain object with a string `type`. */
export type ControlMessage = { type: string } & Record<string, unknown>

export type Decoded =
  | { ok: true; kind: FrameKind.Hello; body: HelloBody }
  | { ok: true; kind: FrameKind.Ping; body: PingBody }
  | { ok: true; kind: FrameKind.Control; body: ControlMessage }
  | { ok: true; kind: FrameKind.Admit; body: AdmitBody }
  | { ok: false; reason: string }

export const MAX_NAME_CHARS = 64
export const MAX_ROLE_CHARS = 32
export const MAX_TYPE_CHARS = 64

const packr = new Packr({ useRecords: false, moreTypes: false, bundleStrings: false })

export function encodeFrame(
  kind: FrameKind,
  body: unknown,
  max_frame_bytes = DEFAULT_MAX_FRAME_BYTES,
): Buffer {
  const packed = packr.pack(body)
  const frame = Buffer.allocUnsafe(2 + packed.byteLength)
  frame[0] = WIRE_VERSION
  frame[1] = kind
  frame.set(packed, 2)
  if (frame.byteLength > max_frame_bytes) {
    throw new RangeError(`frame of ${frame.byteLength} bytes exceeds limit ${max_frame_bytes}`)
  }
  return frame
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false
  const proto = Object.getPrototypeOf(value)
  return proto === Object.prototype || proto === null
}

function isShortString(value: unknown, max_chars: number): value is string {
  return typeof value === 'string' && value.length > 0 && value.length <= max_chars
}

function isPort(value: unknown): value is number {
  return Number.isInteger(value) && (value as number) > 0 && (value as number) < 65536
}

/** A term or a hypercore length. */
function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0
}

function checkHello(body: Record<string, unknown>): Decoded {
  const { proof, identity, binding, name, priority, role, term, lane_port, front_door, published } = body
  if (!(proof instanceof Uint8Array)) return { ok: false, reason: 'hello: proof is not bytes' }
  if (!(identity instanceof Uint8Array)) return { ok: false, reason: 'hello: identity is not bytes' }
  if (!(binding instanceof Uint8Array)) return { ok: false, reason: 'hello: binding is not bytes' }
  if (!isShortString(name, MAX_NAME_CHARS)) return { ok: false, reason: 'hello: bad name' }
  if (typeof priority !== 'number' || !Number.isFinite(priority))
    return { ok: false, reason: 'hello: bad priority' }
  if (!isShortString(role, MAX_ROLE_CHARS)) return { ok: false, reason: 'hello: bad role' }
  if (!isCount(term)) return { ok: false, reason: 'hello: bad term' }
  if (lane_port !== undefined && !isPort(lane_port)) return { ok: false, reason: 'hello: bad lane port' }
  if (
    front_door !== undefined &&
    !(front_door === '' || (isShortString(front_door, 64) && isIP(front_door) !== 0))
  )
    return { ok: false, reason: 'hello: bad front door address' }
  if (published !== undefined && !isCount(published))
    return { ok: false, reason: 'hello: bad published length' }
  return {
    ok: true,
    kind: FrameKind.Hello,
    body: {
      proof,
      identity,
      binding,
      name,
      priority,
      role,
      term,
      ...(lane_port ? { lane_port } : {}),
      ...(front_door !== undefined ? { front_door } : {}),
      ...(published !== undefined ? { published } : {}),
    },
  }
}

function checkAdmit(body: Record<string, unknown>): Decoded {
  const { proof } = body
  if (!(proof instanceof Uint8Array)) return { ok: false, reason: 'admit: proof is not bytes' }
  return { ok: true, kind: FrameKind.Admit, body: { proof } }
}

function checkPing(body: Record<string, unknown>): Decoded {
  const { role, term, published } = body
  if (!isShortString(role, MAX_ROLE_CHARS)) return { ok: false, reason: 'ping: bad role' }
  if (!isCount(term)) return { ok: false, reason: 'ping: bad term' }
  if (published !== undefined && !isCount(published))
    return { ok: false, reason: 'ping: bad published length' }
  return {
    ok: true,
    kind: FrameKind.Ping,
    body: { role, term, ...(published !== undefined ? { published } : {}) },
  }
}

/** Decode and check one frame; never throws. */
export function decodeFrame(frame: Uint8Array, max_frame_bytes = DEFAULT_MAX_FRAME_BYTES): Decoded {
  if (!(frame instanceof Uint8Array)) return { ok: false, reason: 'frame is not bytes' }
  if (frame.byteLength > max_frame_bytes)
    return { ok: false, reason: `oversized frame (${frame.byteLength} bytes)` }
  if (frame.byteLength < 3) return { ok: false, reason: 'truncated frame' }
  if (frame[0] !== WIRE_VERSION) return { ok: false, reason: `unsupported wire version ${frame[0]}` }
  const kind = frame[1]
  let body: unknown
  try {
    body = packr.unpack(frame.subarray(2))
  } catch (error) {
    return { ok: false, reason: `undecodable body: ${(error as Error).message}`.slice(0, 200) }
  }
  if (!isPlainObject(body)) return { ok: false, reason: 'body is not an object' }
  switch (kind) {
    case FrameKind.Hello:
      return checkHello(body)
    case FrameKind.Ping:
      return checkPing(body)
    case FrameKind.Control:
      if (!isShortString(body['type'], MAX_TYPE_CHARS))
        return { ok: false, reason: 'control: missing string type' }
      return { ok: true, kind: FrameKind.Control, body: body as ControlMessage }
    case FrameKind.Admit:
      return checkAdmit(body)
    default:
      return { ok: false, reason: `unknown frame kind ${kind}` }
  }
}
