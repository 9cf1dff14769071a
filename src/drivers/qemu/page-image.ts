import { type FileHandle, open, readdir, readFile, rename, rm } from 'node:fs/promises'
import { join } from 'node:path'

/**
 * Guest memory as a flat page image (issue 21). QEMU's migration stream (QEMU 7.2, migration/savevm.c
 * and migration/ram.c) is: magic `QEVM`, version 3, the configuration section, the RAM section's START
 * (its block list), RAM PART/END sections of page records, then the device sections and EOF. A
 * background snapshot writes pages in a different order each time (the ones the guest is about to write
 * first), so stored as is the stream's chunks do not line up with the previous snapshot's. Split here:
 * - one sparse file per RAM block (`memory.ram.N.ID`), each page at its offset, zero pages as holes;
 * - `memory.devices`: a JSON line (the block list, the RAM section's id) then the stream's bytes before
 *   the first page (header, configuration, the RAM START section) and after the last RAM section (the
 *   device state, EOF, QEMU's description), verbatim.
 * `encodeStream` makes a valid stream again: the same head, one RAM section with every page of every
 * block in address order (a zero page as a ZERO record, as QEMU sends it), the same tail.
 */

export const MEMORY_DEVICES_FILE = 'memory.devices'
const RAM_FILE_PREFIX = 'memory.ram.'
const FORMAT_LINE = 'sustain-qemu-page-image 1'

const PAGE_SIZE = 4096
const QEMU_VM_FILE_MAGIC = 0x5145564d
const QEMU_VM_FILE_VERSION = 3
const QEMU_VM_CONFIGURATION = 0x07
const QEMU_VM_SECTION_START = 0x01
const QEMU_VM_SECTION_PART = 0x02
const QEMU_VM_SECTION_END = 0x03
const QEMU_VM_SUBSECTION = 0x05
const QEMU_VM_SECTION_FOOTER = 0x7e

const FLAG_ZERO = 0x02
const FLAG_MEM_SIZE = 0x04
const FLAG_PAGE = 0x08
const FLAG_EOS = 0x10
const FLAG_CONTINUE = 0x20
const FLAG_MASK = PAGE_SIZE - 1

const READ_BUFFER_BYTES = 1 << 20
const WRITE_RUN_BYTES = 1 << 20
const ZERO_PAGE = Buffer.alloc(PAGE_SIZE)

export interface RamBlock {
  id: string
  length_bytes: number
  /** The part holding the block's pages. */
  file: string
}

interface DevicesMeta {
  page_size: number
  ram_section_id: number
  blocks: RamBlock[]
  head_bytes: number
}

export interface SplitResult {
  blocks: RamBlock[]
  pages: number
  zero_pages: number
  device_bytes: number
  /** The migration stream's size as QEMU wrote it. */
  stream_bytes: number
}

export class StreamFormatError extends Error {}

/** Reads a file forward through a buffer of 1 MiB: the stream is never held whole. */
class Reader {
  private buffer = Buffer.alloc(READ_BUFFER_BYTES)
  private start = 0
  private end = 0
  private file_position = 0
  /** Bytes consumed since the stream's start. */
  position = 0

  constructor(private readonly file: FileHandle) {}

  private async fill(n: number): Promise<void> {
    if (this.end - this.start >= n) return
    if (n > this.buffer.length) {
      const bigger = Buffer.alloc(n)
      this.buffer.copy(bigger, 0, this.start, this.end)
      this.buffer = bigger
    } else this.buffer.copy(this.buffer, 0, this.start, this.end)
    this.end -= this.start
    this.start = 0
    while (this.end < n) {
      const { bytesRead } = await this.file.read(
        this.buffer,
        this.end,
        this.buffer.length - this.end,
        this.file_position,
      )
      if (bytesRead === 0) throw new StreamFormatError(`the stream ends at byte ${this.position + this.end}`)
      this.end += bytesRead
      this.file_position += bytesRead
    }
  }

  /** The next `n` bytes (a view valid until the next read). */
  async take(n: number): Promise<Buffer> {
    await this.fill(n)
    const out = this.buffer.subarray(this.start, this.start + n)
    this.start += n
    this.position += n
    return out
  }

  async peek(): Promise<number | undefined> {
    if (this.end === this.start) {
      this.start = this.end = 0
      const { bytesRead } = await this.file.read(this.buffer, 0, this.buffer.length, this.file_position)
      this.end = bytesRead
      this.file_position += bytesRead
      if (bytesRead === 0) return undefined
    }
    return this.buffer[this.start]
  }

  /** The rest of the stream, as it comes. */
  async *rest(): AsyncGenerator<Buffer> {
    for (;;) {
      if (this.end > this.start) {
        const piece = this.buffer.subarray(this.start, this.end)
        this.position += piece.length
        this.start = this.end
        yield piece
      }
      if ((await this.peek()) === undefined) return
    }
  }

  async u8(): Promise<number> {
    return (await this.take(1))[0]!
  }
  async be32(): Promise<number> {
    return (await this.take(4)).readUInt32BE(0)
  }
  async be64(): Promise<number> {
    const value = (await this.take(8)).readBigUInt64BE(0)
    if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new StreamFormatError(`a 64-bit field of ${value}`)
    return Number(value)
  }
  async str(): Promise<string> {
    return (await this.take(await this.u8())).toString('latin1')
  }
}

/** Coalesces contiguous pages of one block into one write. */
class BlockWriter {
  private run = Buffer.alloc(WRITE_RUN_BYTES)
  private run_offset = -1
  private run_bytes = 0

  constructor(
    readonly file: FileHandle,
    readonly length_bytes: number,
  ) {}

  async put(offset: number, page: Buffer): Promise<void> {
    if (
      this.run_bytes > 0 &&
      (offset !== this.run_offset + this.run_bytes || this.run_bytes === WRITE_RUN_BYTES)
    )
      await this.flush()
    if (this.run_bytes === 0) this.run_offset = offset
    page.copy(this.run, this.run_bytes)
    this.run_bytes += page.length
  }

  async flush(): Promise<void> {
    if (this.run_bytes === 0) return
    await this.file.write(this.run, 0, this.run_bytes, this.run_offset)
    this.run_bytes = 0
  }
}

function ramFileName(index: number, id: string): string {
  return `${RAM_FILE_PREFIX}${index}.${id.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 64)}`
}

/** Header, configuration section, then the RAM START section: returns its block list and section id. */
async function readHead(reader: Reader): Promise<{ ram_section_id: number; blocks: RamBlock[] }> {
  if ((await reader.be32()) !== QEMU_VM_FILE_MAGIC) throw new StreamFormatError('not a QEMU migration stream')
  const version = await reader.be32()
  if (version !== QEMU_VM_FILE_VERSION) throw new StreamFormatError(`stream version ${version}, not 3`)
  let type = await reader.u8()
  if (type === QEMU_VM_CONFIGURATION) {
    await reader.take(await reader.be32()) // the machine type's name
    while ((await reader.peek()) === QEMU_VM_SUBSECTION) {
      await reader.u8()
      const name = await reader.str()
      await reader.be32() // its version
      if (name === 'configuration/target-page-bits') {
        const bits = await reader.be32()
        if (1 << bits !== PAGE_SIZE) throw new StreamFormatError(`target pages of 2^${bits} bytes`)
      } else if (name === 'configuration/capabilities') {
        const count = await reader.be32()
        for (let i = 0; i < count; i++) await reader.str()
      } else if (name === 'configuration/uuid') await reader.take(16)
      else throw new StreamFormatError(`unknown configuration subsection ${name}`)
    }
    type = await reader.u8()
  }
  if (type !== QEMU_VM_SECTION_START)
    throw new StreamFormatError(`section type ${type} before the RAM section`)
  const ram_section_id = await reader.be32()
  const idstr = await reader.str()
  await reader.take(8) // instance id, version id
  if (idstr !== 'ram') throw new StreamFormatError(`iterable section ${idstr} (only RAM is handled)`)
  const total = await reader.be64()
  if ((total & FLAG_MASK) !== FLAG_MEM_SIZE)
    throw new StreamFormatError('the RAM section does not open with its size')
  let left = total - FLAG_MEM_SIZE
  const blocks: RamBlock[] = []
  while (left > 0) {
    const id = await reader.str()
    const length_bytes = await reader.be64()
    if (length_bytes % PAGE_SIZE !== 0) throw new StreamFormatError(`block ${id} of ${length_bytes} bytes`)
    blocks.push({ id, length_bytes, file: ramFileName(blocks.length, id) })
    left -= length_bytes
  }
  if (left !== 0) throw new StreamFormatError('the RAM block list does not add up to its total')
  if ((await reader.be64()) !== FLAG_EOS)
    throw new StreamFormatError('the RAM START section has more than its block list')
  await readFooter(reader, ram_section_id)
  return { ram_section_id, blocks }
}

async function readFooter(reader: Reader, section_id: number): Promise<void> {
  if ((await reader.u8()) !== QEMU_VM_SECTION_FOOTER || (await reader.be32()) !== section_id)
    throw new StreamFormatError(`section ${section_id} has no footer at byte ${reader.position}`)
}

/**
 * Splits the migration stream at `stream_path` into `dir`: `memory.devices` and one sparse file per RAM
 * block. Throws StreamFormatError on what it does not know (compressed pages, multifd, another iterable
 * section): the caller keeps the stream as it is.
 */
export async function splitStream(stream_path: string, dir: string): Promise<SplitResult> {
  const input = await open(stream_path, 'r')
  const writers: BlockWriter[] = []
  const devices_tmp = join(dir, `${MEMORY_DEVICES_FILE}.tmp`)
  let devices: FileHandle | undefined
  try {
    const reader = new Reader(input)
    const { ram_section_id, blocks } = await readHead(reader)
    const head_bytes = reader.position
    for (const block of blocks) {
      const file = await open(join(dir, block.file), 'w')
      writers.push(new BlockWriter(file, block.length_bytes))
      await file.truncate(block.length_bytes)
    }
    const by_id = new Map(blocks.map((b, i) => [b.id, writers[i]!]))
    let pages = 0
    let zero_pages = 0
    let current: BlockWriter | undefined
    for (;;) {
      const type = await reader.peek()
      if (type !== QEMU_VM_SECTION_PART && type !== QEMU_VM_SECTION_END) break
      const header = await reader.take(5)
      if (header.readUInt32BE(1) !== ram_section_id) {
        throw new StreamFormatError(`section ${header.readUInt32BE(1)} between RAM sections`)
      }
      for (;;) {
        const word = await reader.be64()
        const flags = word & FLAG_MASK
        const offset = word - flags
        if (flags === FLAG_EOS) break
        if (flags & ~(FLAG_ZERO | FLAG_PAGE | FLAG_CONTINUE))
          throw new StreamFormatError(`RAM record flags 0x${flags.toString(16)}`)
        if (!(flags & FLAG_CONTINUE)) {
          const id = await reader.str()
          current = by_id.get(id)
          if (!current) throw new StreamFormatError(`a page of unknown block ${id}`)
        }
        if (!current) throw new StreamFormatError('a page continues no block')
        if (offset + PAGE_SIZE > current.length_bytes)
          throw new StreamFormatError(`a page at ${offset} past its block`)
        pages++
        if (flags & FLAG_ZERO) {
          const fill = await reader.u8()
          if (fill === 0) zero_pages++
          else await current.put(offset, Buffer.alloc(PAGE_SIZE, fill))
        } else {
          const page = await reader.take(PAGE_SIZE)
          if (page.equals(ZERO_PAGE)) zero_pages++
          else await current.put(offset, page)
        }
      }
      await readFooter(reader, ram_section_id)
    }
    for (const writer of writers) await writer.flush()
    // The head again (it was read through the buffer), then the tail as it comes.
    devices = await open(devices_tmp, 'w')
    const meta: DevicesMeta = { page_size: PAGE_SIZE, ram_section_id, blocks, head_bytes }
    let at = 0
    const line = Buffer.from(`${FORMAT_LINE}\n${JSON.stringify(meta)}\n`)
    await devices.write(line, 0, line.length, at)
    at += line.length
    const head = Buffer.alloc(head_bytes)
    await input.read(head, 0, head_bytes, 0)
    await devices.write(head, 0, head_bytes, at)
    at += head_bytes
    let device_bytes = head_bytes
    for await (const piece of reader.rest()) {
      await devices.write(piece, 0, piece.length, at)
      at += piece.length
      device_bytes += piece.length
    }
    await devices.sync()
    await devices.close()
    devices = undefined
    await rename(devices_tmp, join(dir, MEMORY_DEVICES_FILE))
    return { blocks, pages, zero_pages, device_bytes, stream_bytes: reader.position }
  } catch (error) {
    await devices?.close().catch(() => {})
    await removePageImage(dir)
    throw error
  } finally {
    for (const writer of writers) await writer.file.close().catch(() => {})
    await input.close()
  }
}

function be64(value: number): Buffer {
  const out = Buffer.alloc(8)
  out.writeBigUInt64BE(BigInt(value))
  return out
}

/** Whether `dir` holds a page image (its `memory.devices`). */
export async function hasPageImage(dir: string): Promise<boolean> {
  return open(join(dir, MEMORY_DEVICES_FILE), 'r').then(
    (file) => file.close().then(() => true),
    () => false,
  )
}

/** The page image's files in `dir` (devices part first). */
export async function pageImageFiles(dir: string): Promise<string[]> {
  const names = await readdir(dir).catch(() => [] as string[])
  return names.filter((n) => n === MEMORY_DEVICES_FILE || n.startsWith(RAM_FILE_PREFIX)).sort()
}

export async function removePageImage(dir: string): Promise<void> {
  for (const name of await pageImageFiles(dir)) await rm(join(dir, name), { force: true })
  await rm(join(dir, `${MEMORY_DEVICES_FILE}.tmp`), { force: true })
}

async function readDevices(dir: string): Promise<{ meta: DevicesMeta; head: Buffer; tail: Buffer }> {
  const bytes = await readFile(join(dir, MEMORY_DEVICES_FILE))
  const first = bytes.indexOf(10)
  const second = bytes.indexOf(10, first + 1)
  if (first < 0 || second < 0 || bytes.subarray(0, first).toString() !== FORMAT_LINE)
    throw new StreamFormatError(`${MEMORY_DEVICES_FILE} is not a page image's device part`)
  const meta = JSON.parse(bytes.subarray(first + 1, second).toString()) as DevicesMeta
  const head = bytes.subarray(second + 1, second + 1 + meta.head_bytes)
  const tail = bytes.subarray(second + 1 + meta.head_bytes)
  return { meta, head, tail }
}

/**
 * A migration stream QEMU's `-incoming` accepts, from the page image in `dir`, in pieces of about 1 MiB:
 * the head, one RAM section with every page of every block in order, the device state.
 */
export async function* encodeStream(dir: string): AsyncGenerator<Buffer> {
  const { meta, head, tail } = await readDevices(dir)
  yield head
  const section = Buffer.alloc(5)
  section[0] = QEMU_VM_SECTION_END
  section.writeUInt32BE(meta.ram_section_id, 1)
  yield section
  const chunk = Buffer.alloc(READ_BUFFER_BYTES)
  for (const block of meta.blocks) {
    const file = await open(join(dir, block.file), 'r')
    try {
      const out: Buffer[] = []
      let out_bytes = 0
      for (let at = 0; at < block.length_bytes; ) {
        const want = Math.min(chunk.length, block.length_bytes - at)
        let got = 0
        while (got < want) {
          const { bytesRead } = await file.read(chunk, got, want - got, at + got)
          if (bytesRead === 0) break
          got += bytesRead
        }
        chunk.fill(0, got, want) // a short file: the rest is zero
        for (let p = 0; p < want; p += PAGE_SIZE) {
          const offset = at + p
          const page = chunk.subarray(p, p + PAGE_SIZE)
          const zero = page.equals(ZERO_PAGE)
          const flags = (zero ? FLAG_ZERO : FLAG_PAGE) | (offset === 0 ? 0 : FLAG_CONTINUE)
          out.push(be64(offset + flags))
          if (offset === 0) out.push(Buffer.from([block.id.length]), Buffer.from(block.id, 'latin1'))
          if (zero) out.push(Buffer.from([0]))
          else out.push(Buffer.from(page))
          out_bytes += zero ? 9 : 8 + PAGE_SIZE
        }
        at += want
        if (out_bytes >= WRITE_RUN_BYTES) {
          yield Buffer.concat(out)
          out.length = 0
          out_bytes = 0
        }
      }
      if (out.length > 0) yield Buffer.concat(out)
    } finally {
      await file.close()
    }
  }
  const end = Buffer.alloc(8 + 5)
  end.writeBigUInt64BE(BigInt(FLAG_EOS), 0)
  end[8] = QEMU_VM_SECTION_FOOTER
  end.writeUInt32BE(meta.ram_section_id, 9)
  yield end
  yield tail
}

/** Splits `dir/stream_name` into a page image in `dir` and removes the stream; on failure keeps it. */
export async function streamToPageImage(dir: string, stream_name: string): Promise<SplitResult> {
  const result = await splitStream(join(dir, stream_name), dir)
  await rm(join(dir, stream_name), { force: true })
  return result
}

/** Whether a snapshot part is guest memory: the stream as QEMU wrote it, or a page image's file. */
export function isMemoryPart(name: string): boolean {
  return name === 'memory.state' || name === MEMORY_DEVICES_FILE || name.startsWith(RAM_FILE_PREFIX)
}

/**
 * Bytes of guest memory that are not zero pages (each page is sent once in a stopped or background
 * snapshot's stream): what the image's RAM files hold, the rest being holes. Unlike the files' apparent
 * size (the blocks' lengths, fixed for a guest) it grows as the guest fills its memory.
 */
export function pageImageDataBytes(result: Pick<SplitResult, 'pages' | 'zero_pages'>): number {
  return (result.pages - result.zero_pages) * PAGE_SIZE
}
