import assert from 'node:assert/strict'
import SecretStream from '@hyperswarm/secret-stream'

/**
 * Let secret-stream encrypt in place every frame it allocated, not only the last one.
 * protomux encodes each message (or cork batch, up to 8 MiB) straight into a frame from the stream's
 * `alloc`, so `_write` can encrypt it where it lies; but secret-stream remembers only the frame it
 * allocated last, and a write queued behind backpressure (the normal case while a writer sends a
 * snapshot) is no longer that one, so `_write` copied it into a fresh buffer first. Profiled sending
 * 256 MiB to one candidate, that copy plus its page faults were about a fifth of the writer's CPU.
 * Patches the class once for the version we pin (6.9); hyperswarm's connections and our lanes share it.
 */

interface SecretStreamInternals {
  alloc(len: number): Buffer
  _write(data: Buffer, cb: (error: Error | null) => void): void
  _outgoingPlain: Buffer | null
  _outgoingWrapped: Buffer | null
}

/** Frame of each plain buffer handed out by `alloc`, until it is written. */
const framesOf = new WeakMap<Buffer, { stream: object; wrapped: Buffer }>()
let patched = false

export function patchSecretStreamFrames(): void {
  if (patched) return
  patched = true
  const proto = SecretStream.prototype as unknown as SecretStreamInternals
  const { alloc, _write: write } = proto
  assert(
    typeof alloc === 'function' && typeof write === 'function',
    'secret-stream changed: re-check secret-stream-frames.ts',
  )
  proto.alloc = function (this: SecretStreamInternals, len: number): Buffer {
    const plain = alloc.call(this, len)
    const wrapped = this._outgoingWrapped
    assert(this._outgoingPlain === plain && wrapped !== null, 'secret-stream alloc changed')
    framesOf.set(plain, { stream: this, wrapped })
    return plain
  }
  proto._write = function (this: SecretStreamInternals, data, cb) {
    const frame = framesOf.get(data)
    if (frame !== undefined && frame.stream === this) {
      // A frame is written once: forget it, so a second write of the same buffer is copied as before.
      framesOf.delete(data)
      this._outgoingPlain = data
      this._outgoingWrapped = frame.wrapped
    }
    write.call(this, data, cb)
  }
}
