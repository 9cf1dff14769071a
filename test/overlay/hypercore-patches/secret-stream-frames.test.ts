import { createHash, randomBytes } from 'node:crypto'
import { once } from 'node:events'
import net from 'node:net'
import SecretStream from '@hyperswarm/secret-stream'
import Protomux from 'protomux'
import { afterEach, beforeAll, describe, expect, it } from 'vitest'
import { installHypercorePatches, withoutPatch } from '../../../overlay/hypercore-patches/index.ts'
import { secretStreamFrames } from '../../../overlay/hypercore-patches/secret-stream-frames.ts'

const MiB = 1024 * 1024
const FRAMES = 24

/** Two secret streams over a real loopback TCP connection; the raw writes of the initiator are recorded. */
async function pair() {
  const server = net.createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as net.AddressInfo
  const accepted = once(server, 'connection') as Promise<[net.Socket]>
  const socket = net.connect(port, '127.0.0.1')
  const [remote] = await accepted
  const a = new SecretStream(true, socket) as any
  const b = new SecretStream(false, remote) as any
  await Promise.all([once(a, 'open'), once(b, 'open')])
  const raw: Buffer[] = []
  const rawWrite = socket.write.bind(socket)
  socket.write = ((chunk: Buffer, ...rest: unknown[]) => {
    raw.push(chunk)
    return (rawWrite as (...args: unknown[]) => boolean)(chunk, ...rest)
  }) as typeof socket.write
  const close = () => {
    a.destroy()
    b.destroy()
    server.close()
  }
  return { a, b, raw, close }
}

/**
 * Allocate FRAMES 1 MiB frames, then write them all: each write but the first queues behind the one
 * before (far above the stream's high-water mark), as a writer's frames do. Returns what arrived and,
 * per frame, whether it went to the socket in the memory it was allocated in.
 */
async function sendFrames(onClose: (close: () => void) => void) {
  const conn = await pair()
  onClose(conn.close)
  const sent: string[] = []
  const plains: Buffer[] = []
  for (let i = 0; i < FRAMES; i++) {
    const plain: Buffer = conn.a.alloc(MiB)
    randomBytes(MiB).copy(plain)
    sent.push(createHash('sha256').update(plain).digest('hex'))
    plains.push(plain)
  }
  const received: string[] = []
  const all = new Promise<void>((resolve) => {
    const parts: Buffer[] = []
    let bytes = 0
    conn.b.on('data', (data: Buffer) => {
      parts.push(data)
      bytes += data.byteLength
      while (bytes >= MiB) {
        const whole = Buffer.concat(parts)
        received.push(createHash('sha256').update(whole.subarray(0, MiB)).digest('hex'))
        parts.length = 0
        if (whole.byteLength > MiB) parts.push(whole.subarray(MiB))
        bytes -= MiB
      }
      if (received.length === FRAMES) resolve()
    })
  })
  let refused = 0
  for (const plain of plains) if (!conn.a.write(plain)) refused += 1
  await all
  const big = conn.raw.filter((chunk) => chunk.byteLength > MiB)
  expect(big).toHaveLength(FRAMES)
  const inPlace = big.map((chunk, i) => chunk.buffer === plains[i]!.buffer)
  return { refused, received, sent, inPlace }
}

describe('secret-stream frames (overlay/hypercore-patches/secret-stream-frames.ts)', () => {
  let close = () => {}
  beforeAll(() => installHypercorePatches())
  afterEach(() => close())

  it('encrypts every allocated frame in place, also frames queued behind backpressure, and delivers them intact', async () => {
    const { refused, received, sent, inPlace } = await sendFrames((c) => {
      close = c
    })
    expect(refused).toBeGreaterThan(0) // backpressure did build up
    expect(received).toEqual(sent)
    // Each frame went to the socket in the memory it was allocated in: no copy before encryption.
    // (Booleans: a failing diff of two 1 MiB buffers would take minutes to print.)
    expect(inPlace).toEqual(sent.map(() => true))
  })

  it('without it, frames queued behind backpressure are copied before encryption', async () => {
    const { refused, received, sent, inPlace } = await withoutPatch(secretStreamFrames, () =>
      sendFrames((c) => {
        close = c
      }),
    )
    expect(refused).toBeGreaterThan(0)
    expect(received).toEqual(sent)
    // Only a frame still the stream's last allocation is encrypted where it lies.
    expect(inPlace.filter((same) => !same).length).toBeGreaterThanOrEqual(FRAMES - 1)
  })

  it('carries a protomux channel: a cork batch and lone messages arrive whole and in order', async () => {
    const conn = await pair()
    close = conn.close
    const raw = {
      preencode: (state: { end: number }, m: Buffer) => {
        state.end += m.byteLength
      },
      encode: (state: { buffer: Buffer; start: number }, m: Buffer) => {
        state.buffer.set(m, state.start)
        state.start += m.byteLength
      },
      decode: (state: { buffer: Buffer; start: number; end: number }) => {
        const m = state.buffer.subarray(state.start, state.end)
        state.start = state.end
        return m
      },
    }
    const digest = (m: Buffer) => createHash('sha256').update(m).digest('hex')
    const got: string[] = []
    const payloads = Array.from({ length: 10 }, (_, i) => randomBytes(i % 2 === 0 ? MiB : 100))
    const done = new Promise<void>((resolve) => {
      const channelB = Protomux.from(conn.b).createChannel({ protocol: 'frames-test' })!
      channelB.addMessage({
        encoding: raw,
        onmessage: (m: Buffer) => {
          got.push(digest(m))
          if (got.length === payloads.length) resolve()
        },
      })
      channelB.open()
    })
    let opened: () => void = () => {}
    const open = new Promise<void>((resolve) => {
      opened = resolve
    })
    const channelA = Protomux.from(conn.a).createChannel({ protocol: 'frames-test', onopen: () => opened() })!
    const message = channelA.addMessage({ encoding: raw })
    channelA.open()
    await open
    channelA.cork()
    for (const p of payloads.slice(0, 5)) message.send(p)
    channelA.uncork()
    for (const p of payloads.slice(5)) message.send(p)
    await done
    expect(got).toEqual(payloads.map(digest))
  })
})
