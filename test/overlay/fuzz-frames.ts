import { randomBytes } from 'node:crypto'
import { Packr } from 'msgpackr'
import { encodeFrame, FrameKind, WIRE_VERSION } from '../../overlay/frames.ts'

const packr = new Packr({ useRecords: false })

function pick<T>(items: readonly T[]): T {
  return items[Math.floor(Math.random() * items.length)]!
}

function frame(kind: number, body: Uint8Array, version = WIRE_VERSION): Buffer {
  return Buffer.concat([Buffer.from([version, kind]), body])
}

/** Frames that must always be rejected by decodeFrame (or by the test validator: type 'bad'). */
export function invalidFrame(): Buffer {
  const kind = pick([FrameKind.Hello, FrameKind.Ping, FrameKind.Control, FrameKind.Admit])
  const generators: (() => Buffer)[] = [
    () => Buffer.alloc(0),
    () => randomBytes(1 + Math.floor(Math.random() * 2)),
    () => frame(kind, packr.pack({ type: 'x' }), 0),
    () => frame(kind, packr.pack({ type: 'x' }), WIRE_VERSION + 1 + Math.floor(Math.random() * 200)),
    () => frame(kind, packr.pack({ type: 'x' }), 1 + Math.floor(Math.random() * (WIRE_VERSION - 1))),
    () => frame(5 + Math.floor(Math.random() * 250), packr.pack({ type: 'x' })),
    () => frame(FrameKind.Admit, packr.pack({ proof: pick(['nope', 1, null, [1]]) })),
    () =>
      frame(
        FrameKind.Hello,
        packr.pack({ proof: randomBytes(32), identity: 'me', binding: randomBytes(64), name: 'x' }),
      ),
    () => frame(kind, packr.pack(pick([1, 'str', [1, 2], null, true, 1.5, Buffer.from('x')]))),
    () => frame(FrameKind.Control, packr.pack({ notype: 1 })),
    () =>
      frame(FrameKind.Control, packr.pack({ type: pick([1, null, '', 'x'.repeat(65), ['a'], { a: 1 }]) })),
    () => frame(FrameKind.Control, packr.pack({ type: 'big', pad: 'x'.repeat(70 * 1024) })),
    () => frame(FrameKind.Control, packr.pack({ type: 'bad' })),
    () => frame(FrameKind.Ping, packr.pack({ role: 5, term: -1 })),
    () => frame(FrameKind.Ping, packr.pack({ role: 'server', term: 1.5 })),
    () => frame(FrameKind.Hello, packr.pack({ proof: 'nope', name: 'x', priority: 1, role: 'r', term: 0 })),
    () =>
      frame(
        FrameKind.Hello,
        packr.pack({ proof: randomBytes(32), name: '', priority: Number.NaN, role: 'r', term: 0 }),
      ),
    () => frame(kind, Buffer.concat([packr.pack({ type: 'x' }), randomBytes(3)])), // trailing bytes
    () => frame(kind, Buffer.from([0xdf, 0xff, 0xff, 0xff, 0xff])), // map claiming 4G entries
    () => frame(kind, Buffer.from([0xdd, 0xff, 0xff, 0xff, 0xff])), // array claiming 4G entries
    () => frame(kind, Buffer.from([0xdb, 0xff, 0xff, 0xff, 0x7f, 0x61])), // str32 past the end
    () => frame(kind, Buffer.from([0xc7, 0x05, 0x42, 1, 2, 3, 4, 5])), // unknown ext type
    () => frame(kind, Buffer.from([0xc1])), // never-used byte
    () => frame(kind, randomBytes(1 + Math.floor(Math.random() * 200))),
  ]
  return pick(generators)()
}

/** Anything: invalid frames, random bytes, and mutations of valid frames (which may decode fine). */
export function randomFrame(): Buffer {
  const r = Math.random()
  if (r < 0.6) return invalidFrame()
  if (r < 0.8) return randomBytes(Math.floor(Math.random() * 512))
  const valid = encodeFrame(FrameKind.Control, { type: 'ok', n: Math.random(), s: 'abc', list: [1, 2, 3] })
  for (let flips = 1 + Math.floor(Math.random() * 4); flips > 0; flips--) {
    const i = Math.floor(Math.random() * valid.byteLength)
    valid[i] = valid[i]! ^ (1 << Math.floor(Math.random() * 8))
  }
  return valid
}
