import type {
  DecodeInput,
  decodeChunk,
  decodeChunkTo,
  EncodeInput,
  EncodeOutput,
  encodeChunk,
  WriteTarget,
} from './codec.ts'
import { type HashAlg, hashBytes } from './hash.ts'

export type CodecTask =
  | { op: 'encode'; input: EncodeInput }
  | { op: 'decode'; input: DecodeInput }
  | { op: 'decode-to'; input: DecodeInput; target: WriteTarget }
  | { op: 'hash'; alg: HashAlg; bytes: Uint8Array }

export type CodecRequest = CodecTask & { id: number }

export type CodecValue = EncodeOutput | Uint8Array | string | number

export type CodecResponse =
  | { id: number; ok: true; value: CodecValue; spare: Uint8Array[] }
  | { id: number; ok: false; error: { name: string; message: string; problem?: string | undefined } }

/** The codec functions (passed in: the worker loads them after its wasm is ready). */
export interface Codec {
  encodeChunk: typeof encodeChunk
  decodeChunk: typeof decodeChunk
  decodeChunkTo: typeof decodeChunkTo
}

function compute(request: CodecTask, codec: Codec): CodecValue {
  switch (request.op) {
    case 'encode':
      return codec.encodeChunk(request.input)
    case 'decode':
      return codec.decodeChunk(request.input)
    case 'decode-to':
      return codec.decodeChunkTo(request.input, request.target)
    case 'hash':
      return hashBytes(request.alg, request.bytes)
  }
}

function inputViews(request: CodecTask): Uint8Array[] {
  if (request.op === 'hash') return [request.bytes]
  const views =
    request.op === 'encode'
      ? [request.input.data, request.input.base]
      : [request.input.blob, request.input.base]
  // File spans are read by the codec into its own buffers: nothing to give back.
  return views.filter((view) => view instanceof Uint8Array)
}

/** The result, and the input buffers it does not reuse: they go back to the caller to be recycled. */
export function handleRequest(request: CodecTask, codec: Codec): { value: CodecValue; spare: Uint8Array[] } {
  const value = compute(request, codec)
  const used = new Set<ArrayBufferLike>()
  if (value instanceof Uint8Array) used.add(value.buffer)
  else if (typeof value === 'object')
    for (const field of Object.values(value)) if (field instanceof Uint8Array) used.add(field.buffer)
  const spare: Uint8Array[] = []
  for (const view of inputViews(request)) {
    if (!used.has(view.buffer)) {
      used.add(view.buffer)
      spare.push(view)
    }
  }
  return { value, spare }
}

/** Below this, copying is as cheap as moving, and small views (hashes) may be cached or shared. */
const MIN_TRANSFER_BYTES = 4096

/** An array buffer can move to another thread only if this view owns all of it (never a pooled slice). */
function ownsBuffer(view: Uint8Array | undefined): view is Uint8Array {
  return (
    view !== undefined &&
    view.byteLength >= MIN_TRANSFER_BYTES &&
    view.buffer instanceof ArrayBuffer &&
    view.byteOffset === 0 &&
    view.byteLength === view.buffer.byteLength
  )
}

/** The buffers to move (not copy) along with a message; each buffer at most once. */
export function transferList(value: unknown): ArrayBuffer[] {
  const views: (Uint8Array | undefined)[] = []
  if (value instanceof Uint8Array) views.push(value)
  else if (Array.isArray(value)) views.push(...value)
  else if (value && typeof value === 'object') {
    for (const field of Object.values(value)) if (field instanceof Uint8Array) views.push(field)
  }
  const buffers = new Set<ArrayBuffer>()
  for (const view of views) if (ownsBuffer(view)) buffers.add(view.buffer as ArrayBuffer)
  return [...buffers]
}

export function requestTransferList(request: CodecRequest): ArrayBuffer[] {
  if (request.op === 'hash') return transferList(request.bytes)
  return transferList(request.input)
}
