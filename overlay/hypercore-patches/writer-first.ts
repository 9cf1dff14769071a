import assert from 'node:assert/strict'
import type Hypercore from 'hypercore'
import type { HypercorePeer } from 'hypercore'
import { checkField, checkMethod } from './check.ts'
import type { Internals } from './internals.ts'
import { type HypercorePatch, peerClass } from './patch.ts'

/**
 * Download policy of one writer's core: while the writer itself is a peer of its core, take blocks from
 * the writer only; peer-to-peer fetching is for after the writer is gone (collect after a failure).
 *
 * Why: with several candidates, hypercore spreads requests over every peer that has a block and
 * re-requests in-flight blocks from idle peers ("hotswap"). Measured with 4 candidates: 1.6 blocks
 * uploaded per block downloaded, so about half the transfers (secret-stream crypto, merkle hashing,
 * storage writes on both ends) were duplicates, on a machine where CPU is the ceiling. From the writer
 * alone every block travels once to every candidate.
 *
 * Mechanism: a held peer's request window is zero (an own `getMaxInflight`/`getMaxHotswapInflight` over
 * hypercore's Peer methods, replicator.js), so the replicator sends it no block, range, hotswap or upgrade
 * request. Everything else stays: it still gets our range broadcasts and its wants are answered, so peers
 * know each other's bitfields when the writer goes. (Hypercore's own `paused` flag would also ignore
 * their wants, and a want is sent once: a restoring node then never learned who holds what.) Safety valve: if the writer serves nothing for `stall_ms`
 * while blocks are wanted (a writer that lost or cleared blocks others hold), the other peers are resumed
 * until the writer reconnects; `urgent_stall_ms` while a collect (a restore) waits. A writer that
 * announced it is leaving holds nobody: its final snapshot reaches every candidate within milliseconds,
 * and a restore must not depend on the one node about to go.
 */

/** The parts of hypercore's internal Peer and Replicator this policy uses. */
interface InternalPeer extends HypercorePeer {
  remoteLength: number
  getMaxInflight(): number
  getMaxHotswapInflight(): number
}
const NO_REQUESTS = () => 0
const TICK_MS = 250
interface InternalReplicator {
  updateAll(): void
  _blocks: { isEmpty(): boolean }
}

export interface WriterFirstOptions {
  /** Writer identity (hex): the Noise key of its data-plane connections. */
  writer: string
  stall_ms: number
  /** The stall bound while a collect (a restore) waits on this core: latency matters more than copies. */
  urgent_stall_ms: number
  /** True while this node still wants blocks of this core for its placements. */
  wanting: () => boolean
  /** The stall valve opened: blocks are taken from every peer until the writer reconnects. */
  onFallback?: () => void
  /**
   * The policy failed (hypercore's internals not as checked): it has resumed every peer and stopped, so
   * downloads go on as plain hypercore's. Called once.
   */
  onDisabled: (error: unknown) => void
}

const NAME = 'writer-first'
let checked = false

/**
 * Not a replacement of hypercore's methods but a policy over its internals (own methods on held peers,
 * the replicator's request queue): checked at start like the patches, and a WriterFirst refuses to run
 * unchecked.
 */
export const writerFirst: HypercorePatch = {
  name: NAME,
  pkg: 'hypercore',
  written_for: '11.37.1',
  check(internals: Internals) {
    checkMethod(NAME, peerClass(internals), 'Peer', 'getMaxInflight')
    checkMethod(NAME, peerClass(internals), 'Peer', 'getMaxHotswapInflight')
    checkField(NAME, internals.peer, 'Peer', 'remoteLength', 'number')
    checkField(NAME, internals.peer, 'Peer', 'remotePublicKey', 'object')
    checkField(NAME, internals.core, 'Hypercore', 'peers', 'object')
    checkMethod(NAME, internals.core, 'Hypercore', 'on')
    checkMethod(NAME, replicatorOf(internals.core), 'Hypercore.core.replicator', 'updateAll')
    checkMethod(NAME, replicatorOf(internals.core)?._blocks, 'Hypercore.core.replicator._blocks', 'isEmpty')
  },
  install() {
    checked = true
  },
  uninstall() {
    checked = false
  },
}

function replicatorOf(core: Hypercore): InternalReplicator | undefined {
  return (core as unknown as { core?: { replicator?: InternalReplicator } }).core?.replicator
}

export class WriterFirst {
  private readonly held = new Set<InternalPeer>()
  private last_progress_ms = performance.now()
  /** Set by the stall valve; cleared when the writer's connection changes. */
  private fallback = false
  private writerPeer: HypercorePeer | null = null
  private readonly timer: NodeJS.Timeout
  private closed = false
  /** The writer announced it is leaving: nobody waits on it, every holder serves. */
  private leaving = false
  /** Collects waiting on this core now. */
  private urgent_count = 0

  constructor(
    private readonly core: Hypercore,
    private readonly opts: WriterFirstOptions,
  ) {
    assert(checked, 'writer-first is not checked: call installHypercorePatches() at start-up')
    assert(opts.stall_ms > 0, 'stall_ms must be > 0')
    assert(opts.urgent_stall_ms > 0 && opts.urgent_stall_ms <= opts.stall_ms, 'urgent_stall_ms out of range')
    core.on('peer-add', () => this.guarded(() => this.apply()))
    core.on('peer-remove', (peer: HypercorePeer) =>
      this.guarded(() => {
        this.held.delete(peer as InternalPeer)
        this.apply()
      }),
    )
    core.on('append', () => this.guarded(() => this.apply()))
    core.on('download', () => {
      this.last_progress_ms = performance.now()
    })
    // Also re-applied on a tick: a writer's length arrives in a sync after its peer-add.
    this.timer = setInterval(
      () =>
        this.guarded(() => {
          this.apply()
          this.checkStall()
        }),
      TICK_MS,
    )
    this.timer.unref()
    this.guarded(() => this.apply())
  }

  /**
   * Run policy work from an event or the timer, where a throw would crash the process: a failure
   * disables the policy (every peer resumed, hypercore's own spreading from then on) and is reported once.
   */
  private guarded(work: () => void): void {
    if (this.closed) return
    try {
      work()
    } catch (error) {
      this.closed = true
      clearInterval(this.timer)
      for (const peer of this.held) {
        delete (peer as Partial<InternalPeer>).getMaxInflight
        delete (peer as Partial<InternalPeer>).getMaxHotswapInflight
      }
      this.held.clear()
      this.opts.onDisabled(error)
    }
  }

  private isWriter(peer: HypercorePeer): boolean {
    return peer.remotePublicKey?.toString('hex') === this.opts.writer
  }

  /** Hold every non-writer peer while the writer is connected (and not stalled); else resume them. */
  apply(): void {
    if (this.core.closed) this.close()
    if (this.closed) return
    // A writer behind our length (its storage was lost) cannot serve what we miss.
    const writer =
      (this.core.peers as InternalPeer[]).find(
        (p) => this.isWriter(p) && p.remoteLength >= this.core.length,
      ) ?? null
    if (writer !== this.writerPeer) {
      this.writerPeer = writer
      this.fallback = false
      this.last_progress_ms = performance.now()
    }
    if (writer !== null && !this.fallback && !this.leaving) {
      for (const peer of this.core.peers as InternalPeer[]) {
        if (peer === writer || this.held.has(peer)) continue
        peer.getMaxInflight = NO_REQUESTS
        peer.getMaxHotswapInflight = NO_REQUESTS
        this.held.add(peer)
      }
      return
    }
    this.resumeAll()
  }

  /** The writer's role as its pings tell it: a leaving writer is not waited on (its final blocks spread). */
  setLeaving(leaving: boolean): void {
    if (leaving === this.leaving) return
    this.leaving = leaving
    this.guarded(() => this.apply())
  }

  /** A collect waits on this core until the returned release: the stall valve opens after urgent_stall_ms. */
  urgent(): () => void {
    this.urgent_count += 1
    if (this.urgent_count === 1) this.last_progress_ms = performance.now()
    let released = false
    return () => {
      if (released) return
      released = true
      this.urgent_count -= 1
    }
  }

  private resumeAll(): void {
    if (this.held.size === 0) return
    for (const peer of this.held) {
      // Back to the prototype's methods.
      delete (peer as Partial<InternalPeer>).getMaxInflight
      delete (peer as Partial<InternalPeer>).getMaxHotswapInflight
    }
    this.held.clear()
    this.replicator().updateAll() // requests that waited for the writer go to the others now
  }

  private replicator(): InternalReplicator {
    const replicator = replicatorOf(this.core)
    assert(replicator !== undefined, 'hypercore has no core.replicator')
    return replicator
  }

  private checkStall(): void {
    if (this.closed || this.held.size === 0) return
    const waiting = this.opts.wanting() || !this.replicator()._blocks.isEmpty()
    if (!waiting) {
      this.last_progress_ms = performance.now()
      return
    }
    const stall_ms = this.urgent_count > 0 ? this.opts.urgent_stall_ms : this.opts.stall_ms
    if (performance.now() - this.last_progress_ms < stall_ms) return
    this.fallback = true
    this.resumeAll()
    this.opts.onFallback?.()
  }

  close(): void {
    if (this.closed) return
    this.closed = true
    clearInterval(this.timer)
    if (!this.core.closed) this.resumeAll()
  }
}
