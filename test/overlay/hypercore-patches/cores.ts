import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Hypercore from 'hypercore'

type Stream = NodeJS.ReadWriteStream & { destroy(): void; noiseStream: object }
/** hypercore's replicate with the options our type declaration leaves out (a Noise key pair). */
type Replicating = { replicate(isInitiator: boolean, options: { keyPair?: object }): Stream }

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

  /**
   * Replicate `a` (initiator) with `b` in memory; returns the two protocol streams. `keys` are the Noise
   * key pairs of each side (what `b` sees as `remotePublicKey` of `a`); random when absent.
   */
  link(a: Hypercore, b: Hypercore, keys: { a?: object; b?: object } = {}): [Stream, Stream] {
    const sa = (a as unknown as Replicating).replicate(true, { keyPair: keys.a })
    const sb = (b as unknown as Replicating).replicate(false, { keyPair: keys.b })
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
