/**
 * The control plane's thread (see control-plane.ts). Started ahead by prewarmControlWorker or by
 * ControlWorker (control-link.ts), which sends the plane's options in an 'init' message; every ControlPlane event and log record goes to the main thread as a
 * message, and the main thread's calls come back as messages.
 */
import assert from 'node:assert/strict'
import { parentPort } from 'node:worker_threads'
import { traceThreadStalls } from '../lib/stall-trace.ts'
import { raiseThreadPriority } from '../lib/thread-priority.ts'
import type { FromControl, ToControl } from './control-link.ts'
import { ControlPlane, type ControlPlaneOptions, type HelloAdvert } from './control-plane.ts'
import type { OverlayLog } from './sessions.ts'

assert(parentPort, 'control-worker.ts runs as a worker thread')
const port = parentPort
const post = (message: FromControl) => port.postMessage(message)

const level =
  (name: 'debug' | 'info' | 'warn' | 'error') =>
  (obj: object, msg?: string): void =>
    post({ t: 'log', level: name, obj, msg: msg ?? '' })
const log: OverlayLog = {
  debug: level('debug'),
  info: level('info'),
  warn: level('warn'),
  error: level('error'),
}

/** Buffers arrive as plain Uint8Arrays. */
function revive(raw: ControlPlaneOptions): ControlPlaneOptions {
  return {
    ...raw,
    keyPair: { publicKey: Buffer.from(raw.keyPair.publicKey), secretKey: Buffer.from(raw.keyPair.secretKey) },
    secret: Buffer.from(raw.secret),
  }
}

traceThreadStalls('control', (record) => log.warn(record, 'stall'))
// Heartbeats must not wait behind the node's and the machine's CPU-bound work (thread-priority.ts).
void raiseThreadPriority().then((priority) => log.info({ priority }, 'control thread priority'))

const STATS_INTERVAL_MS = 250
const asBuffer = (bytes: Uint8Array) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
let plane: ControlPlane | null = null
let statsTimer: NodeJS.Timeout | null = null

function init(options: ControlPlaneOptions, advert: HelloAdvert): void {
  assert(plane === null, 'control worker initialised twice')
  const p = new ControlPlane(revive(options), log)
  plane = p
  for (const name of ['peer-up', 'peer-down', 'heard', 'message', 'suspicion', 'admission-refused']) {
    p.on(name, (...args: unknown[]) => post({ t: 'event', name, args }))
  }
  p.start(advert).then(
    () => {
      post({ t: 'started' })
      statsTimer = setInterval(() => post({ t: 'stats', stats: p.stats() }), STATS_INTERVAL_MS)
    },
    (error) => post({ t: 'failed', error: (error as Error).stack ?? String(error) }),
  )
}

port.on('message', (message: ToControl) => {
  if (message.t === 'init') {
    init(message.options, message.advert)
    return
  }
  assert(plane !== null, `control worker got ${message.t} before init`)
  switch (message.t) {
    case 'local':
      plane.setLocalState(message.state)
      return
    case 'send':
      plane.send(message.key, asBuffer(message.frame))
      return
    case 'broadcast':
      plane.broadcast(asBuffer(message.frame))
      return
    case 'drop':
      plane.drop(message.key, message.reason)
      return
    case 'gone':
      plane.gone(message.key)
      return
    case 'flush': {
      const id = message.id
      void plane.flush(message.timeout_ms).then((ok) => post({ t: 'flushed', id, ok }))
      return
    }
    case 'isolate':
      plane.isolate()
      return
    case 'rejoin':
      plane.rejoin()
      return
    case 'cut':
      plane.cut()
      return
    case 'close':
      if (statsTimer) clearInterval(statsTimer)
      plane.close().then(
        () => post({ t: 'closed' }),
        (error) => post({ t: 'closed', error: String(error) }),
      )
  }
})
