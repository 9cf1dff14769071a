import type { Readable } from 'node:stream'
import type { ImagePart, ImageWriter } from '../../snapshot/index.ts'

/**
 * Where the service runs. The process driver (default) and the QEMU driver implement this one
 * interface; the runtime never knows which it has. Events reach the runtime at once (no polling by it):
 * the core's escalation ladder (restart in place, then resign) reacts to them.
 */
export type DriverEvent =
  /** The service passed a probe after a start (and again after it had failed one). */
  | { kind: 'answering' }
  /** The service process (or VM) exited or was killed. */
  | { kind: 'exited'; code: number | null; signal: string | null }
  /** A probe failed while the service was meant to be up. */
  | { kind: 'probe-failed'; reason: string }
  /** The current state cannot be used (e.g. the state directory is gone or corrupt, a VM disk error). */
  | { kind: 'unusable'; reason: string }

/** A consistent copy of the service's state, taken while it was paused. */
export interface Capture {
  parts: ImagePart[]
  /** How long the service was paused (measured by the driver, logged on every snapshot). */
  pause_ms: number
  /** Frees whatever the capture holds (a staging copy); call after the snapshot is stored. */
  release(): Promise<void>
  /** Names this capture's state, for a later capture's `same_as` (absent: the driver cannot tell). */
  generation?: string
  /**
   * Set when the state captured is the one of capture `same_as`, by the rules the driver already trusts
   * to skip unchanged files (no file copied, grown or removed since): its snapshot holds this state.
   */
  same_as?: string
  /** Asked with `CaptureOptions.same_as` and found so: no parts, nothing to store (a snapshot of it is empty). */
  parts_omitted?: true
}

export interface CaptureOptions {
  /**
   * Called while the service is frozen for this capture, or (a `same_as` check) just before the check
   * reads the state: output commit marks here which output the snapshot covers (what left the service
   * before this call has its cause in the state read after it). May be called more than once (a check
   * that found a change, then the freeze that copies it): the last call is the mark.
   */
  onFrozen?: () => void
  /**
   * Output commit: the caller takes a capture that finds the state of capture `same_as` unchanged as
   * covered by that capture's snapshot. A driver that can tell cheaply checks that first (calling
   * `onFrozen` before it reads the state; the process driver needs no freeze for that) and then returns
   * a capture with no parts and `same_as` set.
   */
  same_as?: string
}

export interface HelperResult {
  code: number
  stdout: Buffer
  stderr: string
}

export interface HelperOptions {
  /** Streamed to the helper's stdin (archives for `merge`). */
  stdin?: Readable
  /** Receives the helper's stdout as it comes (archives from `archive`); `stdout` is then empty. */
  stdout?: NodeJS.WritableStream
  timeout_ms?: number
  /** Extra environment for the helper (context: fork point, peer, newest snapshot time). */
  env?: Record<string, string>
}

export interface ServiceDriver {
  readonly kind: 'process' | 'qemu'
  /**
   * Whether a TCP connection to a client port that goes through proves the service listens there. True
   * for a process (the port is its own socket: refused until it listens); false under QEMU user
   * networking (the host side of a forward accepts even when no guest listens). The front door forwards
   * to a freshly started service on this evidence, before its first probe answered.
   */
  readonly connect_proves_listening: boolean
  /** True between a successful start and the next stop or exit. */
  readonly running: boolean
  /** Start the service on its current state. Resolves once it is spawned (not yet answering). */
  start(): Promise<void>
  /**
   * Start the service's command ahead of need, held before it reads its state (manifest `prestart`);
   * the next start() releases it instead of spawning. Does nothing when the service runs, a copy is
   * already held, or the service cannot be prestarted. Absent: the driver cannot.
   */
  prestart?(): Promise<void>
  /** End the copy prestart() holds, if any. Idempotent. */
  dropPrestarted?(): Promise<void>
  /** Stop the service, keeping its state. Idempotent. Resolves once it is gone. */
  stop(reason: string): Promise<void>
  /** Quiesce (helper), pause, copy what changed, resume: a consistent image of the state. */
  capture(options?: CaptureOptions): Promise<Capture>
  /** Where a restore writes the state; committing it replaces the current state atomically. */
  stateWriter(): ImageWriter
  /**
   * Put a complete state directory prepared beside the state directory (a warm standby's copy) in its
   * place, atomically, while the service is stopped: a restore without the decode.
   */
  adoptState(prepared_dir: string): Promise<void>
  /** Run a helper verb next to the service (a local child process, or over SSH in a VM guest). */
  helper(verb: string, args: string[], options?: HelperOptions): Promise<HelperResult>
  on(event: 'event', listener: (event: DriverEvent) => void): this
  off(event: 'event', listener: (event: DriverEvent) => void): this
  /** Stop everything the driver started (service, probes, timers). */
  close(): Promise<void>
}
