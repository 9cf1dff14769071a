import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Hypercore from 'hypercore'

type Stream = NodeJS.ReadWriteStream & { destroy(): void; noiseStream: object }

/**
 * Real hypercores in a temp dir for the patch tests: `writer` and sparse readers of it, each connected
 * to the writer (and `link` connects any two) over an in-memory replication stream.
 */
export class Cores {
  private readonly streams: Stream[] = []
  private readonly cores: Hypercore[] = []
  private constructor(
    readonly dir: string,
    readonly writer: Hypercore,
  ) {}

  static async open(): Promise<Cores> {
    const dir = await mkdtemp(join(tmpdir(), 'sustain-patch-test-'))
    const writer = new Hypercore(join(dir, 'writer'))
    await writer.ready()
    const cores = new Cores(dir, writer)
    cores.cores.push(writer)
    return cores
  }

  reader(name: string): Promise<Hypercore> {
    return this.add(new Hypercore(join(this.dir, name), this.writer.key))
  }

  /** Ready `core` and close it with the others. */
  async add(core: Hypercore): Promise<Hypercore> {
    this.cores.push(core)
    await core.ready()
    return core
  }

  /** Replicate `a` (initiator) with `b` in memory; returns the two protocol streams. */
  link(a: Hypercore, b: Hypercore): [Stream, Stream] {
    const sa = a.replicate(true) as unknown as Stream
    const sb = b.replicate(false) as unknown as Stream
    sa.pipe(sb).pipe(sa)
    this.streams.push(sa, sb)
    return [sa, sb]
  }

  unlink(pair: [Stream, Stream]): void {
    for (const s of pair) s.destroy()
  }

  async close(): Promise<void> {
    for (const s of this.streams) s.destroy()
    await Promise.all(this.cores.map((c) => c.close()))
    await rm(this.dir, { recursive: true, force: true })
  }
}
