import { parentPort } from 'node:worker_threads'
import * as codec from './codec.ts'
import type { CodecRequest, CodecResponse } from './codec-protocol.ts'
import { handleRequest, transferList } from './codec-protocol.ts'

const port = parentPort
if (!port) throw new Error('codec-worker.ts runs only as a worker thread')
await codec.ready
port.on('message', (request: CodecRequest) => {
  let response: CodecResponse
  try {
    response = { id: request.id, ok: true, ...handleRequest(request, codec) }
  } catch (error) {
    const e = error as Error & { problem?: string }
    response = { id: request.id, ok: false, error: { name: e.name, message: e.message, problem: e.problem } }
  }
  port.postMessage(
    response,
    response.ok ? [...transferList(response.value), ...transferList(response.spare)] : [],
  )
})
port.postMessage({ id: -1, ok: true, value: 'ready', spare: [] } satisfies CodecResponse)
