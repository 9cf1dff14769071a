import c from 'compact-encoding'
import type Protomux from 'protomux'
import type { ProtomuxChannel, ProtomuxMessage } from 'protomux'

/** Protocol name of a forwarded client connection on a member's data connection. */
export const FORWARD_PROTOCOL = 'sustain/forward/1'
/**
 * Bytes a side may send before the other grants more: what one forwarded connection can have in
 * flight in each direction, so a client that never reads (or a huge upload) holds at most this much in
 * the relaying nodes, whatever the transport buffers.
 */
export const WINDOW_BYTES = 256 * 1024
/**
 * Credit goes back once this many delivered bytes gathered, not per data message: an interactive
 * protocol (an SMTP line each way per round trip) otherwise sends a credit message, with its encryption
 * and a wake-up of the far node, for every line. Below the window, so a sender never waits for credit the
 * receiver keeps back (a used-up window means more than this was delivered or is about to be).
 */
const CREDIT_BATCH_BYTES = WINDOW_BYTES / 4
/** Largest data message; socket reads are 64 KiB at most, so most chunks go out whole. */
const MAX_DATA_MESSAGE_BYTES = 64 * 1024

export interface FlowHandlers {
  /** The far side accepted the stream (its side of the channel is open). */
  onOpen?: () => void
  onData: (bytes: Buffer) => void
  /** The far side will send nothing more (half-close). */
  onEnd: () => void
  /** The window reopened after it was used up. */
  onCredit: () => void
  /** The channel is gone: closed by either side, rejected, or its connection died. */
  onClose: (opened: boolean, remote: boolean) => void
}

/**
 * One forwarded connection on a protomux channel of an admitted data connection: data, credit and end
 * messages. Credit-based flow control per channel, because many channels share one connection (and its
 * hypercore replication): a stalled reader must stop its own sender only, never the shared stream.
 */
export class FlowChannel {
  /** Bytes this side may still send. */
  window_bytes = WINDOW_BYTES
  /** Bytes given to sendData past the window (less than one chunk: the caller pauses its source). */
  private pending: Buffer[] = []
  /** Bytes the far side may still send us; more is a protocol violation that closes the channel. */
  private receive_allowed_bytes = WINDOW_BYTES
  /** Bytes delivered onward and not yet granted back (sent once CREDIT_BATCH_BYTES gathered). */
  private ungranted_bytes = 0
  private readonly channel: ProtomuxChannel
  private readonly data: ProtomuxMessage<Buffer>
  private readonly credit: ProtomuxMessage<number>
  private readonly end: ProtomuxMessage<Buffer>
  private opened_ = false
  private end_after_pending = false
  private closed_ = false

  private constructor(
    mux: Protomux,
    id: Buffer,
    private readonly handlers: FlowHandlers,
  ) {
    const channel = mux.createChannel({
      protocol: FORWARD_PROTOCOL,
      id,
      onopen: () => {
        this.opened_ = true
        this.handlers.onOpen?.()
      },
      onclose: (remote) => {
        if (this.closed_) return
        this.closed_ = true
        this.handlers.onClose(this.opened_, remote)
      },
    })
    if (!channel) throw new Error('forward channel cannot be created (connection closed or id in use)')
    this.channel = channel
    // Handlers run inside protomux's decoder: nothing the peer sends may throw out of them.
    this.data = channel.addMessage<Buffer>({
      encoding: c.raw,
      onmessage: (b) => this.guard(() => this.onData(b)),
    })
    this.credit = channel.addMessage<number>({
      encoding: c.uint,
      onmessage: (n) => this.guard(() => this.onCredit(n)),
    })
    this.end = channel.addMessage<Buffer>({
      encoding: c.raw,
      onmessage: () => this.guard(() => this.handlers.onEnd()),
    })
  }

  /** Open a stream (the side that accepted a client). `handlers.onOpen` runs once the far side accepts. */
  static open(mux: Protomux, id: Buffer, handlers: FlowHandlers): FlowChannel {
    const flow = new FlowChannel(mux, id, handlers)
    flow.channel.open()
    return flow
  }

  /** Accept a stream the far side opened with `id` (inside a protomux pair notification). */
  static accept(mux: Protomux, id: Buffer, handlers: FlowHandlers): FlowChannel {
    return FlowChannel.open(mux, id, handlers)
  }

  get opened(): boolean {
    return this.opened_
  }

  get closed(): boolean {
    return this.closed_
  }

  /** Whether the caller may give more (else it pauses its source until onCredit). */
  get writable(): boolean {
    return this.window_bytes > 0 && this.pending.length === 0
  }

  /** Sends what the window allows; keeps the rest until credit comes (the caller pauses meanwhile). */
  sendData(bytes: Buffer): void {
    if (this.closed_ || bytes.byteLength === 0) return
    this.pending.push(bytes)
    this.flush()
  }

  private flush(): void {
    while (this.pending.length > 0 && this.window_bytes > 0 && !this.closed_) {
      const head = this.pending[0]!
      const n = Math.min(head.byteLength, this.window_bytes, MAX_DATA_MESSAGE_BYTES)
      this.data.send(head.subarray(0, n))
      this.window_bytes -= n
      if (n === head.byteLength) this.pending.shift()
      else this.pending[0] = head.subarray(n)
    }
  }

  /** `bytes` the far side sent were delivered onward: it may send that much more (batched). */
  grant(bytes: number): void {
    if (this.closed_ || bytes <= 0) return
    this.ungranted_bytes += bytes
    if (this.ungranted_bytes < CREDIT_BATCH_BYTES) return
    const n = this.ungranted_bytes
    this.ungranted_bytes = 0
    this.receive_allowed_bytes += n
    this.credit.send(n)
  }

  /** Half-close: sent after any data still waiting for credit. */
  sendEnd(): void {
    if (this.closed_) return
    if (this.pending.length > 0) this.end_after_pending = true
    else this.end.send(Buffer.alloc(0))
  }

  close(): void {
    if (this.closed_) return
    this.closed_ = true
    this.channel.close()
    this.handlers.onClose(this.opened_, false)
  }

  private onData(bytes: Buffer): void {
    this.receive_allowed_bytes -= bytes.byteLength
    if (this.receive_allowed_bytes < 0) {
      this.close() // the peer ignored its window
      return
    }
    this.handlers.onData(bytes)
  }

  private onCredit(bytes: number): void {
    if (!Number.isSafeInteger(bytes) || bytes <= 0 || this.window_bytes + bytes > WINDOW_BYTES) {
      this.close() // credit for bytes never sent
      return
    }
    const was_writable = this.writable
    this.window_bytes += bytes
    this.flush()
    if (this.pending.length === 0 && this.end_after_pending) {
      this.end_after_pending = false
      this.end.send(Buffer.alloc(0))
    }
    if (!was_writable && this.writable) this.handlers.onCredit()
  }

  private guard(work: () => void): void {
    try {
      work()
    } catch {
      this.close()
    }
  }
}
