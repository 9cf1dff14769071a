import assert from 'node:assert/strict'
import { checkField, checkMethod } from './check.ts'
import type { Internals } from './internals.ts'
import { type HypercorePatch, Installed, peerClass } from './patch.ts'
import { replaceMethod } from './replace-method.ts'

/** The parts of hypercore's internal replicator Peer this patch touches. */
interface ReplicatorPeer {
  core: object & { state: { fork: number } }
  _getProof(batch: ReadBatch, msg: ProofMessage, pushing: boolean): Promise<unknown>
}

/** hypercore-storage's read batch (CoreRX), as `_getProof` gets it. */
interface ReadBatch {
  getBlock(index: number): Promise<Buffer | null>
}

interface ProofMessage {
  fork: number
  block: { index: number } | null
}

/** Bytes of recently served blocks kept per core. */
const CACHE_BYTES = 16 * 1024 * 1024

/**
 * Recently read blocks of one core, oldest first (a Map keeps insertion order), at most `max_bytes` of
 * them once read; a read under way is shared by every caller of its key.
 */
export class ServedBlocks {
  private readonly blocks = new Map<string, Promise<Buffer | null>>()
  private readonly sizes = new Map<string, number>()
  private bytes = 0

  constructor(private readonly max_bytes: number = CACHE_BYTES) {
    assert(max_bytes > 0, 'cache size must be > 0 bytes')
  }

  /** Bytes of the blocks held (reads under way not counted). */
  get held_bytes(): number {
    return this.bytes
  }

  get(key: string, read: () => Promise<Buffer | null>): Promise<Buffer | null> {
    const held = this.blocks.get(key)
    if (held) return held
    const reading = read()
    this.blocks.set(key, reading)
    reading.then(
      (block) => this.settled(key, reading, block),
      () => this.forget(key, reading),
    )
    return reading
  }

  private settled(key: string, reading: Promise<Buffer | null>, block: Buffer | null): void {
    if (this.blocks.get(key) !== reading) return
    if (block === null) {
      this.forget(key, reading)
      return
    }
    this.sizes.set(key, block.byteLength)
    this.bytes += block.byteLength
    assert(this.bytes >= 0, 'cache byte count went negative')
    for (const [oldest, promise] of this.blocks) {
      if (this.bytes <= this.max_bytes || oldest === key) break
      this.forget(oldest, promise)
    }
  }

  private forget(key: string, reading: Promise<Buffer | null>): void {
    if (this.blocks.get(key) !== reading) return
    this.blocks.delete(key)
    this.bytes -= this.sizes.get(key) ?? 0
    this.sizes.delete(key)
  }
}

const caches = new WeakMap<object, ServedBlocks>()

/**
 * Serve a block several peers ask for at about the same time from one storage read. Sending a snapshot
 * to 4 candidates, the writer read every block 4 times from RocksDB: ~2 ms of CPU per MiB per peer in
 * the storage threads, a third of the writer's work. A block's bytes never change once written (our cores
 * never truncate, and the fork is part of the key), so a cached read is as good as a fresh one; a cleared
 * block is refused before its read (the bitfield check precedes it).
 */
const NAME = 'serve-cache'
const installed = new Installed()

export const serveCache: HypercorePatch = {
  name: NAME,
  pkg: 'hypercore',
  written_for: '11.37.1',
  check(internals: Internals) {
    checkMethod(NAME, peerClass(internals), 'Peer', '_getProof')
    checkField(NAME, internals.peer, 'Peer', 'core', 'object')
    checkField(NAME, internals.peer, 'Peer', 'core.state.fork', 'number')
    checkField(NAME, internals.peer, 'Peer', 'core.storage', 'object')
    // The batch `_getProof` reads blocks through (the replicator makes it with core.storage.read(fork)).
    const storage = (internals.peer as { core: { storage: { read(fork: number): unknown } } }).core.storage
    checkMethod(NAME, storage, 'Peer.core.storage', 'read')
    const batch = storage.read(0) as { destroy?: () => void }
    try {
      checkMethod(NAME, batch, 'CoreRX', 'getBlock')
    } finally {
      batch.destroy?.()
    }
  },
  install(internals: Internals) {
    if (installed.active) return
    installed.add(
      replaceMethod(
        NAME,
        peerClass(internals) as ReplicatorPeer,
        '_getProof',
        (getProof) =>
          function (this: ReplicatorPeer, batch, msg, pushing) {
            const wanted = msg.block?.index
            if (wanted === undefined || pushing) return getProof.call(this, batch, msg, pushing)
            let cache = caches.get(this.core)
            if (!cache) {
              cache = new ServedBlocks()
              caches.set(this.core, cache)
            }
            const served = cache
            const read = batch.getBlock
            const fork = this.core.state.fork
            batch.getBlock = (index: number) =>
              index === wanted
                ? served.get(`${fork}:${index}`, () => read.call(batch, index))
                : read.call(batch, index)
            return getProof.call(this, batch, msg, pushing)
          },
      ),
    )
  },
  uninstall: () => installed.revert(),
}
