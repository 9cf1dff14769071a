import { availableParallelism } from 'node:os'
import { Worker } from 'node:worker_threads'
import { workerEntry } from '../lib/worker-entry.ts'
import { recycle } from './buffers.ts'
import type { DecodeInput, EncodeInput, EncodeOutput, WriteTarget } from './codec.ts'
import * as codec from './codec.ts'
import type { CodecRequest, CodecResponse, CodecTask, CodecValue } from './codec-protocol.ts'
import { handleRequest, requestTransferList } from './codec-protocol.ts'
import { type ChunkProblem, CodecError } from './errors.ts'
import type { HashAlg } from './hash.ts'

/**
 * Runs chunk encode/decode/hash off the main thread (xdelta3 encoding is CPU bound), so every core works
 * while the main thread does I/O. Buffers passed in are moved to the worker: do not reuse them.
 */
export interface CodecPool {
  readonly threads: number
  encode(input: EncodeInput): Promise<EncodeOutput>
  decode(input: DecodeInput): Promise<Uint8Array>
  /** Decode and verify, and write the result at `target` from the codec thread; resolves to its size. */
  decodeTo(input: DecodeInput, target: WriteTarget): Promise<number>
  hash(alg: HashAlg, bytes: Uint8Array): Promise<Uint8Array>
  /** How many tasks to keep in flight to keep every thread busy. */
  readonly window: number
  close(): Promise<void>
}

interface Pending {
  resolve: (value: CodecValue) => void
  reject: (error: Error) => void
}

interface Slot {
  worker: Worker
  inflight: number
}

function toError(error: { name: string; message: string; problem?: string | undefined }): Error {
  if (error.name === 'CodecError' && error.problem)
    return new CodecError(error.problem as ChunkProblem, error.message)
  const e = new Error(error.message)
  e.name = error.name
  return e
}

/**
 * Tasks queued per thread. File chunks travel as spans, so a queued task holds a few bytes (a buffer only
 * for streamed parts: at most 2 MiB per task); a deeper queue keeps a thread busy when the main thread is
 * descheduled on a loaded machine (256 MiB / 1 % encode at load 7.6-8.4: 0.29-0.58 s with 6, 0.32-0.68
 * with 2).
 */
const WINDOW_PER_THREAD = 4

/** The operations, on top of one way to run a task. */
abstract class BasePool {
  protected abstract run(request: CodecTask): Promise<CodecValue>

  encode(input: EncodeInput): Promise<EncodeOutput> {
    return this.run({ op: 'encode', input }) as Promise<EncodeOutput>
  }

  decode(input: DecodeInput): Promise<Uint8Array> {
    return this.run({ op: 'decode', input }) as Promise<Uint8Array>
  }

  decodeTo(input: DecodeInput, target: WriteTarget): Promise<number> {
    return this.run({ op: 'decode-to', input, target }) as Promise<number>
  }

  hash(alg: HashAlg, bytes: Uint8Array): Promise<Uint8Array> {
    return this.run({ op: 'hash', alg, bytes }) as Promise<Uint8Array>
  }
}

class WorkerCodecPool extends BasePool implements CodecPool {
  readonly window: number
  private readonly slots: Slot[]
  private readonly pending = new Map<number, Pending>()
  private nextId = 0
  private readonly started: Promise<void>
  private failure: Error | undefined

  constructor(readonly threads: number) {
    super()
    this.window = threads * WINDOW_PER_THREAD
    const entry = workerEntry('codec-worker', new URL('./codec-worker-entry.mjs', import.meta.url))
    this.slots = Array.from({ length: threads }, () => ({ worker: new Worker(entry), inflight: 0 }))
    this.started = Promise.all(
      this.slots.map(
        (slot) =>
          new Promise<void>((resolve, reject) => {
            slot.worker.once('error', reject)
            slot.worker.on('message', (message: CodecResponse) => {
              if (message.id === -1) {
                slot.worker.off('error', reject)
                slot.worker.on('error', (error) => this.fail(error))
                slot.worker.unref()
                resolve()
                return
              }
              this.settle(slot, message)
            })
            slot.worker.on('exit', (code) => this.fail(new Error(`codec worker exited with code ${code}`)))
          }),
      ),
    ).then(() => {})
  }

  private fail(error: Error): void {
    this.failure ??= error
    for (const pending of this.pending.values()) pending.reject(error)
    this.pending.clear()
  }

  private settle(slot: Slot, message: CodecResponse): void {
    slot.inflight--
    // An idle worker must not keep the process alive; a busy one must, or an awaited result never comes.
    if (slot.inflight === 0) slot.worker.unref()
    const pending = this.pending.get(message.id)
    if (!pending) return
    this.pending.delete(message.id)
    if (message.ok) {
      for (const view of message.spare) recycle(view)
      pending.resolve(message.value)
    } else pending.reject(toError(message.error))
  }

  protected async run(request: CodecTask): Promise<CodecValue> {
    await this.started
    if (this.failure) throw this.failure
    const id = this.nextId++
    const full: CodecRequest = { ...request, id }
    let slot = this.slots[0]!
    for (const candidate of this.slots) if (candidate.inflight < slot.inflight) slot = candidate
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject })
      if (slot.inflight++ === 0) slot.worker.ref()
      slot.worker.postMessage(full, requestTransferList(full))
    })
  }

  async close(): Promise<void> {
    this.failure ??= new Error('codec pool closed')
    await Promise.all(this.slots.map((slot) => slot.worker.terminate()))
  }
}

/** Same interface, on the calling thread: for tiny images and short-lived processes. */
class InlineCodecPool extends BasePool implements CodecPool {
  readonly threads = 0
  readonly window = 1

  protected async run(request: CodecTask): Promise<CodecValue> {
    await codec.ready
    const { value, spare } = handleRequest(request, codec)
    for (const view of spare) recycle(view)
    return value
  }

  async close(): Promise<void> {}
}

/** `threads` 0 runs inline; default: one worker per core. */
export function createCodecPool(options: { threads?: number } = {}): CodecPool {
  const threads = options.threads ?? availableParallelism()
  if (!Number.isInteger(threads) || threads < 0) throw new Error(`bad thread count ${threads}`)
  return threads === 0 ? new InlineCodecPool() : new WorkerCodecPool(threads)
}
