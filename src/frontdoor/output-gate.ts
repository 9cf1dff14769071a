import { Transform, type TransformCallback } from 'node:stream'
import type { OutputCommit } from './output-commit.ts'

/** Bytes held per connection before the gate stops reading from the service (its socket buffers the rest). */
const HELD_LIMIT_BYTES = 256 * 1024

interface HeldChunk {
  seq: number
  bytes: Buffer
}

/**
 * The one place every byte the service sends to a client passes through on the server, whether the
 * client is local or forwarded from another node's front door. Without output commit it passes bytes at
 * once. With it (zero-loss mode), each chunk is numbered as it is read and held until `OutputCommit`
 * releases its number (a snapshot that froze the service after it is stored on k candidates); the end of
 * the stream waits behind the last held chunk. Past HELD_LIMIT_BYTES the gate stops taking input, so the
 * service's socket pauses rather than a buffer growing.
 */
export class OutputGate extends Transform {
  private readonly held: HeldChunk[] = []
  private held_bytes = 0
  /** Input callback withheld while too much is held. */
  private blocked: TransformCallback | null = null
  /** End of stream withheld until every held chunk went. */
  private ending: TransformCallback | null = null

  constructor(private readonly commit: OutputCommit | null = null) {
    // Small: the service's socket and the far side's window do the buffering.
    super({ highWaterMark: 16 * 1024 })
    if (commit) {
      commit.attach(this)
      this.once('close', () => commit.detach(this))
    }
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    if (this.commit === null) {
      callback(null, chunk)
      return
    }
    this.held.push({ seq: this.commit.take(), bytes: chunk })
    this.held_bytes += chunk.byteLength
    if (this.held_bytes > HELD_LIMIT_BYTES) this.blocked = callback
    else callback()
  }

  override _flush(callback: TransformCallback): void {
    if (this.held.length === 0) callback()
    else this.ending = callback
  }

  override _destroy(error: Error | null, callback: (error: Error | null) => void): void {
    this.commit?.detach(this)
    callback(error)
  }

  /** Passes on every held chunk numbered up to `seq` (called by OutputCommit). */
  releaseUpTo(seq: number): void {
    while (this.held.length > 0 && this.held[0]!.seq <= seq) {
      const { bytes } = this.held.shift()!
      this.held_bytes -= bytes.byteLength
      this.push(bytes)
    }
    if (this.blocked && this.held_bytes <= HELD_LIMIT_BYTES) {
      const resume = this.blocked
      this.blocked = null
      resume()
    }
    if (this.ending && this.held.length === 0) {
      const end = this.ending
      this.ending = null
      end()
    }
  }

  /** Bytes read from the service and not yet released. */
  get heldBytes(): number {
    return this.held_bytes
  }
}
