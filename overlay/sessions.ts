import c from 'compact-encoding'
import type { SecretStream } from 'hyperswarm'
import Protomux, { type ProtomuxMessage } from 'protomux'
import { ADMISSION_PROTOCOL, CONTROL_PROTOCOL, type Decoded, decodeFrame } from './frames.ts'
import { admissionProof, verifyAdmissionProof } from './keys.ts'
import type { PeerDownReason } from './peer-table.ts'

/** What the overlay logs through: pino's Logger, or the control worker's forwarder. */
export interface OverlayLog {
  debug(obj: object, msg?: string): void
  info(obj: object, msg?: string): void
  warn(obj: object, msg?: string): void
  error(obj: object, msg?: string): void
}

export type PlaneKind = 'control' | 'data'

/** One connection on a plane and what we know about it. */
export interface Session {
  plane: PlaneKind
  /** The connection's Noise key (hex): derived control key on the control plane, identity on the data plane. */
  conn_key: string
  /** The peer's identity (hex): the connection key on the data plane, from the verified hello on control. */
  key: string
  conn: SecretStream
  frame: ProtomuxMessage<Buffer> | null
  admitted: boolean
  closed: boolean
  admission_timer: NodeJS.Timeout | null
}

/** Connection keep-alive and idle timeout: a frozen or dead peer's connection closes after ~5 s. */
const CONN_KEEPALIVE_MS = 1000
const CONN_TIMEOUT_MS = 5000

export interface SessionsOptions {
  plane: PlaneKind
  admissionKey: Buffer
  admission_timeout_ms: number
  max_frame_bytes: number
  log: OverlayLog
  /** Our first frame on a new connection, given our proof of the secret bound to it. */
  admissionFrame: (session: Session, proof: Buffer, handshakeHash: Buffer) => Buffer
  /** A well-formed frame (the envelope is checked here; a bad one drops the connection). */
  onFrame: (session: Session, decoded: Exclude<Decoded, { ok: false }>) => void
  /** An admitted session went away (once per session that was current for its peer). */
  onClosed: (session: Session, reason: PeerDownReason) => void
  onRefused: (conn_key: string, reason: string) => void
}

/**
 * The connections of one plane: a protomux channel per connection, admission by an HMAC proof of the
 * secret bound to the connection's Noise handshake hash (a peer that fails or stalls it is refused within
 * admission_timeout_ms), frame envelopes checked before anything else sees them, one current session per
 * peer identity.
 */
export class Sessions {
  private readonly pending = new Set<Session>()
  /** Admitted sessions by peer identity. */
  readonly admitted = new Map<string, Session>()
  readonly counters = { frames_sent: 0, frame_bytes_sent: 0, frames_received: 0, frame_bytes_received: 0 }
  private closing = false

  constructor(private readonly opts: SessionsOptions) {}

  /** Connections still proving the secret (not yet admitted or refused). */
  get pendingCount(): number {
    return this.pending.size
  }

  accept(conn: SecretStream): void {
    const plane = this.opts.plane
    const conn_key = conn.remotePublicKey.toString('hex')
    conn.on('error', (error: Error) =>
      this.opts.log.debug({ peer: conn_key, plane, err: error.message }, 'connection error'),
    )
    if (this.closing) {
      conn.destroy()
      return
    }
    conn.setKeepAlive(CONN_KEEPALIVE_MS)
    conn.setTimeout(CONN_TIMEOUT_MS)
    const session: Session = {
      plane,
      conn_key,
      // On the data plane the Noise key is the identity; on the control plane the hello names it.
      key: plane === 'data' ? conn_key : '',
      conn,
      frame: null,
      admitted: false,
      closed: false,
      admission_timer: null,
    }
    this.pending.add(session)
    conn.on('close', () => this.onClose(session))
    session.admission_timer = setTimeout(
      () => this.refuse(session, 'admission timeout'),
      this.opts.admission_timeout_ms,
    )
    const handshakeHash = conn.handshakeHash
    if (!handshakeHash) {
      this.refuse(session, 'no handshake hash')
      return
    }
    const channel = Protomux.from(conn).createChannel({
      protocol: plane === 'control' ? CONTROL_PROTOCOL : ADMISSION_PROTOCOL,
      onopen: () => {
        const proof = admissionProof(this.opts.admissionKey, handshakeHash, conn.publicKey)
        this.send(session, this.opts.admissionFrame(session, proof, handshakeHash))
      },
      onclose: () => {
        if (!session.closed) conn.destroy()
      },
    })
    if (!channel) {
      this.refuse(session, 'channel already open')
      return
    }
    session.frame = channel.addMessage<Buffer>({
      encoding: c.raw,
      onmessage: (frame: Buffer) => {
        // Protomux rethrows TypeErrors as uncaught: nothing a peer sends may throw out of here.
        try {
          this.onRawFrame(session, frame)
        } catch (error) {
          this.opts.log.error({ peer: conn_key, err: error }, 'frame handler failed')
          this.drop(session, `handler error: ${(error as Error).message}`)
        }
      },
    })
    channel.open()
  }

  private onRawFrame(session: Session, frame: Buffer): void {
    if (session.closed) return
    this.counters.frames_received++
    this.counters.frame_bytes_received += frame.byteLength
    const decoded = decodeFrame(frame, this.opts.max_frame_bytes)
    if (!decoded.ok) {
      this.drop(session, decoded.reason)
      return
    }
    this.opts.onFrame(session, decoded)
  }

  send(session: Session, frame: Buffer): boolean {
    if (!session.frame || session.closed) return false
    session.frame.send(frame)
    this.counters.frames_sent++
    this.counters.frame_bytes_sent += frame.byteLength
    return true
  }

  proofValid(session: Session, proof: Uint8Array): boolean {
    const handshakeHash = session.conn.handshakeHash!
    return verifyAdmissionProof(this.opts.admissionKey, handshakeHash, session.conn.remotePublicKey, proof)
  }

  /** The session proved membership as `key`: it becomes the peer's current session (an older one closes). */
  admit(session: Session, key: string): void {
    if (session.admission_timer) clearTimeout(session.admission_timer)
    session.admission_timer = null
    session.admitted = true
    session.key = key
    this.pending.delete(session)
    const previous = this.admitted.get(key)
    this.admitted.set(key, session)
    if (previous && previous !== session && !previous.closed) previous.conn.destroy()
  }

  /** Close a connection that never got admitted (an admitted one is dropped). */
  refuse(session: Session, reason: string): void {
    if (session.closed || session.admitted) {
      if (session.admitted) this.drop(session, reason)
      return
    }
    this.opts.log.warn({ peer: session.conn_key, plane: session.plane, reason }, 'peer refused')
    this.opts.onRefused(session.conn_key, reason)
    this.dismiss(session)
  }

  /** Close a connection for a protocol violation. */
  drop(session: Session, reason: string): void {
    if (!session.admitted) {
      this.refuse(session, reason)
      return
    }
    if (session.closed) return
    this.opts.log.warn({ peer: session.key, plane: session.plane, reason }, 'peer dropped')
    this.markClosed(session, 'rejected')
    session.conn.destroy()
  }

  /** Close a session not yet admitted quietly (no log, no onRefused): it is not needed. */
  dismiss(session: Session): void {
    if (session.closed || session.admitted) return
    session.closed = true
    this.pending.delete(session)
    if (session.admission_timer) clearTimeout(session.admission_timer)
    session.conn.destroy()
  }

  /** Close the current session of `key` quietly (no onClosed): the caller already knows it is gone. */
  discard(key: string): void {
    const session = this.admitted.get(key)
    if (!session || session.closed) return
    session.closed = true
    this.admitted.delete(key)
    session.conn.destroy()
  }

  private onClose(session: Session): void {
    if (session.admission_timer) clearTimeout(session.admission_timer)
    this.pending.delete(session)
    if (session.closed) return
    if (!session.admitted) {
      session.closed = true
      return
    }
    this.markClosed(session, 'closed')
  }

  private markClosed(session: Session, reason: PeerDownReason): void {
    session.closed = true
    if (this.admitted.get(session.key) !== session) return // replaced by a newer connection
    this.admitted.delete(session.key)
    this.opts.onClosed(session, reason)
  }

  close(): void {
    this.closing = true
    for (const s of this.pending) if (s.admission_timer) clearTimeout(s.admission_timer)
  }
}

/** Test aid: tear the transport out from under a connection (no goodbye at the protocol level). */
export function cutTransport(conn: SecretStream): void {
  ;(conn.rawStream as unknown as { destroy(): void } | null)?.destroy()
}
