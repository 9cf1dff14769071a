import { EventEmitter, once } from 'node:events'
import { isMainThread, Worker } from 'node:worker_threads'
import { workerEntry } from '../lib/worker-entry.ts'
import type { ControlPlaneOptions, ControlStats, HelloAdvert, LocalState } from './control-plane.ts'
import type { OverlayLog } from './sessions.ts'

/** Messages from the main thread to the control worker. */
export type ToControl =
  | { t: 'init'; options: ControlPlaneOptions; advert: HelloAdvert }
  | { t: 'local'; state: LocalState }
  | { t: 'send'; key: string; frame: Uint8Array }
  | { t: 'broadcast'; frame: Uint8Array }
  | { t: 'drop'; key: string; reason: string }
  | { t: 'gone'; key: string }
  | { t: 'flush'; id: number; timeout_ms: number }
  | { t: 'isolate' }
  | { t: 'rejoin' }
  | { t: 'cut' }
  | { t: 'close' }

/** Messages from the control worker. */
export type FromControl =
  | { t: 'started' }
  | { t: 'failed'; error: string }
  | { t: 'closed'; error?: string }
  | { t: 'event'; name: string; args: unknown[] }
  | { t: 'stats'; stats: ControlStats }
  | { t: 'flushed'; id: number; ok: boolean }
  | { t: 'log'; level: 'debug' | 'info' | 'warn' | 'error'; obj: object; msg: string }

/** What the Federation needs of its control plane, inline (ControlPlane) or in a worker (ControlWorker). */
export interface ControlApi extends EventEmitter {
  start(advert: HelloAdvert): Promise<void>
  close(): Promise<void>
  setLocalState(state: LocalState): void
  send(key: string, frame: Buffer): void
  broadcast(frame: Buffer): void
  drop(key: string, reason: string): void
  /** Evidence from elsewhere (a lane) that `key`'s process is gone: down until it is heard again. */
  gone(key: string): void
  /** Resolves once every frame sent so far was acknowledged by its peer (true), or after timeout_ms. */
  flush(timeout_ms: number): Promise<boolean>
  isolate(): void
  rejoin(): void
  cut(): void
  stats(): ControlStats
}

const CLOSE_TIMEOUT_MS = 10_000
const ENTRY = workerEntry('control-worker', new URL('./control-worker-entry.mjs', import.meta.url))
let prewarmed: Worker | null = null

/**
 * Start booting a control thread now, for the next ControlWorker to take. Booting one (tsx, hyperswarm,
 * sodium in a fresh isolate) took 0.5-1.5 s on a loaded 2-core machine, and a node's election counts its
 * join wait (join_wait_ms, 1.5 s) from the node's start: a control plane that came up that late let the
 * node elect itself before it heard its peers. Unreferenced: an unused one does not keep a process alive.
 */
export function prewarmControlWorker(): void {
  if (prewarmed !== null || !isMainThread) return
  prewarmed = new Worker(ENTRY)
  prewarmed.unref()
}

/**
 * The control plane in a worker thread of its own (control-worker.ts): its event loop only runs
 * heartbeats, admission and control frames, so replication and snapshot work on the main thread never
 * delay a heartbeat. Same events as ControlPlane, re-emitted here in the main thread.
 */
export class ControlWorker extends EventEmitter implements ControlApi {
  private readonly worker: Worker
  private latest: ControlStats = {
    frames_sent: 0,
    frame_bytes_sent: 0,
    frames_received: 0,
    frame_bytes_received: 0,
    control_wire_bytes_written: 0,
    connections: 0,
  }
  private readonly started: Promise<void>
  private exited = false
  private initialised = false
  private localBeforeStart: ToControl | null = null
  private flushes = new Map<number, (ok: boolean) => void>()
  private next_flush = 1

  constructor(
    private readonly options: ControlPlaneOptions,
    log: OverlayLog,
  ) {
    super()
    this.worker = prewarmed ?? new Worker(ENTRY)
    prewarmed = null
    this.worker.ref()
    this.worker.on('exit', () => {
      this.exited = true
    })
    this.started = new Promise<void>((resolve, reject) => {
      this.worker.once('error', reject)
      this.worker.on('message', (message: FromControl) => {
        switch (message.t) {
          case 'started':
            resolve()
            return
          case 'failed':
            reject(new Error(`control plane failed to start: ${message.error}`))
            return
          case 'event':
            this.emit(message.name, ...message.args)
            return
          case 'stats':
            this.latest = message.stats
            return
          case 'flushed':
            this.flushes.get(message.id)?.(message.ok)
            this.flushes.delete(message.id)
            return
          case 'log':
            log[message.level](message.obj, message.msg)
            return
          case 'closed':
            this.emit('closed', message.error)
        }
      })
    })
    this.started.then(
      () => this.worker.on('error', (error) => log.error({ err: error }, 'control worker failed')),
      () => {},
    )
  }

  start(advert: HelloAdvert): Promise<void> {
    this.worker.postMessage({ t: 'init', options: this.options, advert } satisfies ToControl)
    this.initialised = true
    if (this.localBeforeStart) this.post(this.localBeforeStart)
    this.localBeforeStart = null
    return this.started
  }

  private post(message: ToControl): void {
    if (this.exited) return
    // Before 'init' the worker has no plane: only the newest local state matters then, sent after it.
    if (!this.initialised) {
      if (message.t === 'local') this.localBeforeStart = message
      return
    }
    this.worker.postMessage(message)
  }

  async close(): Promise<void> {
    if (this.exited) return
    if (!this.initialised) {
      // No plane was ever started in it: nothing to flush or close, and it would never answer 'close'.
      await this.worker.terminate()
      return
    }
    const closed = once(this, 'closed')
    this.post({ t: 'close' })
    const timeout = new Promise((resolve) => setTimeout(resolve, CLOSE_TIMEOUT_MS).unref())
    await Promise.race([closed, timeout, once(this.worker, 'exit')])
    await this.worker.terminate()
  }

  setLocalState(state: LocalState): void {
    this.post({ t: 'local', state: { role: state.role, term: state.term, published: state.published } })
  }

  send(key: string, frame: Buffer): void {
    this.post({ t: 'send', key, frame })
  }

  broadcast(frame: Buffer): void {
    this.post({ t: 'broadcast', frame })
  }

  drop(key: string, reason: string): void {
    this.post({ t: 'drop', key, reason })
  }

  gone(key: string): void {
    this.post({ t: 'gone', key })
  }

  flush(timeout_ms: number): Promise<boolean> {
    if (this.exited || !this.initialised) return Promise.resolve(false)
    const id = this.next_flush++
    return new Promise<boolean>((resolve) => {
      // The worker bounds its wait too; this bounds a worker that stopped answering.
      const timer = setTimeout(() => {
        this.flushes.delete(id)
        resolve(false)
      }, timeout_ms + 50)
      this.flushes.set(id, (ok) => {
        clearTimeout(timer)
        resolve(ok)
      })
      this.post({ t: 'flush', id, timeout_ms })
    })
  }

  isolate(): void {
    this.post({ t: 'isolate' })
  }

  rejoin(): void {
    this.post({ t: 'rejoin' })
  }

  cut(): void {
    this.post({ t: 'cut' })
  }

  /** The worker's counters, at most 250 ms old. */
  stats(): ControlStats {
    return { ...this.latest }
  }
}
