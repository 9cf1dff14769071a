import type { Readable, Writable } from 'node:stream'
import type { FlowChannel, FlowHandlers } from './flow-channel.ts'

/** The local side of a forwarded connection. */
export interface LocalEnds {
  /** Bytes for the far side: the client socket (origin), the service's output gate (server). */
  source: Readable
  /** Bytes from the far side: the client socket (origin), the service socket (server). */
  sink: Writable
  /** Tear the local connection down at once (its server died, or the peer broke the protocol). */
  destroy: () => void
}

/**
 * Joins a local connection to a FlowChannel, both directions, with backpressure and half-close:
 * the source pauses while the channel's window is used up; credit goes back only once the sink took
 * the bytes into the kernel (the write callback), so a reader that stops reading stops its sender.
 * A channel that closes before both directions ended (its server or origin died) destroys the local
 * connection at once: nothing is replayed elsewhere.
 */
export class Splice implements FlowHandlers {
  private flow: FlowChannel | null = null
  private ends: LocalEnds | null = null
  private local_ended = false
  private remote_ended = false
  private done = false
  /** Some byte went either way: from then on the connection can never be sent elsewhere. */
  moved = false
  private detached = false
  private onSourceData: ((bytes: Buffer) => void) | null = null
  private onSourceEnd: (() => void) | null = null

  constructor(private readonly onDone: (graceful: boolean) => void = () => {}) {}

  attach(flow: FlowChannel, ends: LocalEnds): void {
    this.flow = flow
    this.ends = ends
    const { source } = ends
    this.onSourceData = (bytes: Buffer) => {
      this.moved = true
      flow.sendData(bytes)
      if (!flow.writable) source.pause()
    }
    this.onSourceEnd = () => {
      this.local_ended = true
      flow.sendEnd()
    }
    source.on('data', this.onSourceData)
    source.once('end', this.onSourceEnd)
    source.resume()
  }

  /**
   * Give the local connection back untouched (its stream died before any byte went either way, so no
   * service saw anything of it and it may go to another server). Only valid while `moved` is false.
   */
  detach(): void {
    if (this.moved || !this.ends) return
    this.detached = true
    this.done = true
    const { source } = this.ends
    source.pause()
    if (this.onSourceData) source.off('data', this.onSourceData)
    if (this.onSourceEnd) source.off('end', this.onSourceEnd)
  }

  /** The local connection is gone (socket 'close'): the channel goes too. */
  localClosed(): void {
    if (this.detached) return
    this.finish(this.local_ended && this.remote_ended)
    this.flow?.close()
  }

  onData(bytes: Buffer): void {
    const { flow, ends } = this
    if (!flow || !ends || this.detached) return
    this.moved = true
    ends.sink.write(bytes, (error) => {
      if (!error) flow.grant(bytes.byteLength)
    })
  }

  onEnd(): void {
    if (this.detached) return
    this.moved = true
    this.remote_ended = true
    this.ends?.sink.end()
  }

  onCredit(): void {
    this.ends?.source.resume()
  }

  onClose(): void {
    if (this.detached) return
    // Both directions ended: the sink finishes on its own (its last bytes are still draining).
    if (this.local_ended && this.remote_ended) {
      this.finish(true)
      return
    }
    this.finish(false)
    this.ends?.destroy()
  }

  private finish(graceful: boolean): void {
    if (this.done) return
    this.done = true
    this.onDone(graceful)
  }
}
