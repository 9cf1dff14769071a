import { checkField, checkMethod, PatchError } from './check.ts'
import type { Internals } from './internals.ts'
import { type HypercorePatch, Installed } from './patch.ts'
import { replaceMethod } from './replace-method.ts'

/**
 * Let secret-stream encrypt in place every frame it allocated, not only the last one.
 * protomux encodes each message (or cork batch, up to 8 MiB) straight into a frame from the stream's
 * `alloc`, so `_write` can encrypt it where it lies; but secret-stream remembers only the frame it
 * allocated last, and a write queued behind backpressure (the normal case while a writer sends a
 * snapshot) is no longer that one, so `_write` copied it into a fresh buffer first. Profiled sending
 * 256 MiB to one candidate, that copy plus its page faults were about a fifth of the writer's CPU.
 * Patches the class: hyperswarm's connections and our lanes share it.
 */
interface SecretStreamInternals {
  alloc(len: number): Buffer
  _write(data: Buffer, cb: (error: Error | null) => void): void
  _outgoingPlain: Buffer | null
  _outgoingWrapped: Buffer | null
}

/** Frame of each plain buffer handed out by `alloc`, until it is written. */
const framesOf = new WeakMap<Buffer, { stream: object; wrapped: Buffer }>()
const NAME = 'secret-stream-frames'
const installed = new Installed()

export const secretStreamFrames: HypercorePatch = {
  name: NAME,
  pkg: '@hyperswarm/secret-stream',
  written_for: '6.9.2',
  check(internals: Internals) {
    checkMethod(NAME, internals.SecretStream.prototype, 'SecretStream', 'alloc')
    checkMethod(NAME, internals.SecretStream.prototype, 'SecretStream', '_write')
    // alloc leaves the plain frame and the wrapped buffer around it in these two fields.
    const stream = internals.secretStream as SecretStreamInternals
    const plain = stream.alloc(1)
    checkField(NAME, stream, 'SecretStream', '_outgoingWrapped', 'object')
    if (stream._outgoingPlain !== plain || stream._outgoingWrapped?.buffer !== plain.buffer) {
      throw new PatchError(
        NAME,
        'SecretStream.alloc no longer keeps its frame in _outgoingPlain/_outgoingWrapped',
      )
    }
  },
  install(internals: Internals) {
    if (installed.active) return
    const proto = internals.SecretStream.prototype as SecretStreamInternals
    installed.add(
      replaceMethod(
        NAME,
        proto,
        'alloc',
        (alloc) =>
          function (this: SecretStreamInternals, len: number): Buffer {
            const plain = alloc.call(this, len)
            const wrapped = this._outgoingWrapped
            // Checked at install; a frame not found here is copied as secret-stream itself would.
            if (this._outgoingPlain === plain && wrapped !== null)
              framesOf.set(plain, { stream: this, wrapped })
            return plain
          },
      ),
    )
    installed.add(
      replaceMethod(
        NAME,
        proto,
        '_write',
        (write) =>
          function (this: SecretStreamInternals, data, cb) {
            const frame = framesOf.get(data)
            if (frame !== undefined && frame.stream === this) {
              // A frame is written once: forget it, so a second write of the same buffer is copied as before.
              framesOf.delete(data)
              this._outgoingPlain = data
              this._outgoingWrapped = frame.wrapped
            }
            write.call(this, data, cb)
          },
      ),
    )
  },
  uninstall: () => installed.revert(),
}
