import { createWriteStream } from 'node:fs'
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { encodeStream, MEMORY_DEVICES_FILE, splitStream } from '../../src/drivers/qemu/page-image.ts'

/**
 * The page image's parser and encoder on a small stream laid out as QEMU 7.2 writes one (the layout seen
 * in real streams: test/qemu/page-image.slow.test.ts checks those against QEMU itself): pages out of
 * order, CONTINUE records, zero pages, a fill byte, two RAM blocks, device bytes after the RAM sections.
 */

const PAGE = 4096
const be32 = (n: number) => {
  const b = Buffer.alloc(4)
  b.writeUInt32BE(n)
  return b
}
const be64 = (n: number) => {
  const b = Buffer.alloc(8)
  b.writeBigUInt64BE(BigInt(n))
  return b
}
const str = (s: string) => Buffer.concat([Buffer.from([s.length]), Buffer.from(s)])
const footer = (id: number) => Buffer.concat([Buffer.from([0x7e]), be32(id)])
const page = (seed: number) => Buffer.alloc(PAGE, seed)

const RAM_ID = 2
const BLOCKS = [
  { id: 'pc.ram', pages: 8 },
  { id: '/rom@etc/acpi/tables', pages: 2 },
]
const DEVICES = Buffer.from([0x04, ...be32(3), ...str('timer'), ...be32(0), ...be32(2), 1, 2, 3, 0x00])

function stream(records: Buffer[], options: { tail?: Buffer } = {}): Buffer {
  const total = BLOCKS.reduce((n, b) => n + b.pages * PAGE, 0)
  return Buffer.concat([
    be32(0x5145564d),
    be32(3),
    Buffer.from([0x07]),
    be32(13),
    Buffer.from('pc-i440fx-7.2'),
    Buffer.from([0x01]),
    be32(RAM_ID),
    str('ram'),
    be32(0),
    be32(4),
    be64(total | 0x04),
    ...BLOCKS.flatMap((b) => [str(b.id), be64(b.pages * PAGE)]),
    be64(0x10),
    footer(RAM_ID),
    // A PART section: pages of both blocks out of order.
    Buffer.from([0x02]),
    be32(RAM_ID),
    ...records,
    be64(0x10),
    footer(RAM_ID),
    // A second one, then the device state.
    Buffer.from([0x02]),
    be32(RAM_ID),
    be64(7 * PAGE + 0x08),
    str('pc.ram'),
    page(7),
    be64(0x10),
    footer(RAM_ID),
    options.tail ?? DEVICES,
  ])
}

const RECORDS = [
  Buffer.concat([be64(5 * PAGE + 0x08), str('pc.ram'), page(5)]),
  Buffer.concat([be64(1 * PAGE + 0x08 + 0x20), page(1)]),
  Buffer.concat([be64(0 * PAGE + 0x02 + 0x20), Buffer.from([0])]),
  Buffer.concat([be64(1 * PAGE + 0x02), str('/rom@etc/acpi/tables'), Buffer.from([0xaa])]),
  Buffer.concat([be64(3 * PAGE + 0x08), str('pc.ram'), Buffer.alloc(PAGE)]),
]

let dir: string
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sustain-page-image-unit-'))
})
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true })
})

async function split(name: string, bytes: Buffer) {
  const path = join(dir, `${name}.stream`)
  await writeFile(path, bytes)
  const out = join(dir, name)
  await mkdir(out)
  return { out, result: await splitStream(path, out) }
}

describe('page image of a migration stream', () => {
  it('puts each page at its offset whatever the order; zero pages are holes; the rest is the device part', async () => {
    const { out, result } = await split('a', stream(RECORDS))
    expect(result.blocks.map((b) => b.id)).toEqual(['pc.ram', '/rom@etc/acpi/tables'])
    expect(result.pages).toBe(6)
    expect(result.zero_pages).toBe(2) // the ZERO record and the all-zero PAGE
    const ram = await readFile(join(out, result.blocks[0]!.file))
    expect(ram.length).toBe(8 * PAGE)
    for (let p = 0; p < 8; p++) {
      const want = p === 1 || p === 5 || p === 7 ? page(p) : Buffer.alloc(PAGE)
      expect(ram.subarray(p * PAGE, (p + 1) * PAGE).equals(want), `page ${p}`).toBe(true)
    }
    const rom = await readFile(join(out, result.blocks[1]!.file))
    expect(rom.subarray(PAGE).equals(Buffer.alloc(PAGE, 0xaa))).toBe(true)
    const devices = await readFile(join(out, MEMORY_DEVICES_FILE))
    expect(devices.subarray(devices.length - DEVICES.length).equals(DEVICES)).toBe(true)
    expect(result.device_bytes).toBeLessThan(200)
  })

  it('encodes a stream that splits into the same image', async () => {
    const { out } = await split('b', stream(RECORDS))
    const encoded = join(dir, 'b.encoded')
    await pipeline(Readable.from(encodeStream(out)), createWriteStream(encoded))
    const again = join(dir, 'b.again')
    await mkdir(again)
    const result = await splitStream(encoded, again)
    // Every page of every block is in the encoding (a zero one as a ZERO record).
    expect(result.pages).toBe(10)
    const names = (await readdir(out)).sort()
    expect((await readdir(again)).sort()).toEqual(names)
    for (const name of names)
      expect((await readFile(join(again, name))).equals(await readFile(join(out, name))), name).toBe(true)
  })

  it('refuses what it cannot place (a compressed page, an unknown block, a missing footer) and leaves nothing', async () => {
    const compressed = [Buffer.concat([be64(0x100), str('pc.ram'), Buffer.alloc(16)])]
    const unknown = [Buffer.concat([be64(0x08), str('pc.nothing'), page(1)])]
    const no_footer = stream(RECORDS).subarray(0, -DEVICES.length - 5)
    for (const [name, bytes, error] of [
      ['c', stream(compressed), /flags 0x100/],
      ['d', stream(unknown), /unknown block pc.nothing/],
      ['e', no_footer, /ends at byte|no footer/],
    ] as const) {
      const path = join(dir, `${name}.stream`)
      await writeFile(path, bytes)
      const out = join(dir, name)
      await mkdir(out)
      await expect(splitStream(path, out)).rejects.toThrow(error)
      expect(await readdir(out)).toEqual([])
    }
  })
})
