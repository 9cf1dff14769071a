import { PhiAccrual } from '../../overlay/phi-accrual.ts'
import { type CoreConfig, DEFAULT_CORE_CONFIG, type MergePolicy } from '../../src/core/config.ts'
import type { CoreEffect, CoreEvent } from '../../src/core/io.ts'
import type { ControlMessage } from '../../src/core/messages.ts'
import { NodeCore } from '../../src/core/node.ts'
import type { PlantedBug } from '../../src/core/planted-bugs.ts'
import {
  type CapacityNeed,
  capacityFlags,
  capacityNeed,
  compareContenders,
  compareSnapshots,
} from '../../src/core/ranking.ts'
import type { NodeId, SnapshotRef, Strategy } from '../../src/core/types.ts'
import { ROLES } from '../../src/core/types.ts'
import { SimNetwork } from './network.ts'
import { Prng } from './prng.ts'
import { EventQueue } from './queue.ts'

export interface WorldOptions {
  nodes: number
  strategy: Strategy
  merge_direction: 'priority' | 'newest-term'
  /** refuse-to-split adds the safety invariant (never two serving nodes) and majority-only liveness. */
  merge_policy?: MergePolicy
  planted_bug?: PlantedBug
  /** Lineage segments kept; the simulator keeps the schema maximum so fork points stay exact. */
  lineage_segments?: number
  /** Output commit k (null: off): servers' services send output at random; releases are checked. */
  output_commit?: number | null
  /**
   * When a capture reads the service state against when it marks the output it covers. 'at-mark' (the
   * default): both at the take, as a freeze does. 'after-mark': the read at the capture's end, so output
   * made during the capture is in the snapshot but not marked (the process driver's unchanged check:
   * mark, then stat, no freeze). 'before-mark' is a planted bug of this model (not of the core): the read
   * at the take, the mark at the end, as a driver that marked after reading would; the content check
   * (released-write-kept) must catch it.
   */
  capture_read?: 'at-mark' | 'after-mark' | 'before-mark'
  /**
   * Seeds a second generator for the `capacity` figures (each node's free disk and site, snapshot
   * images): drawn apart from the scenario's generator, so its faults are the same with or without them.
   */
  capacity_seed?: number
}

/** Bounds the checker relies on (simulated milliseconds), stated once so the liveness claim is explicit. */
export const BOUNDS = {
  /** A component that has been fault-free this long has exactly one server. */
  liveness_ms: 20_000,
  /** Peers' knowledge (states, snapshots, loads) is considered current after this long. */
  knowledge_ms: 1_500,
  tick_ms: 50,
  /** Steps per node pair per simulated second: a normal run needs ~6 (heartbeats); more is a storm. */
  max_steps_per_pair_s: 25,
} as const

/** Site labels the simulator gives nodes (null: none). */
const SITES = ['site-a', 'site-b', null] as const

export class Violation extends Error {
  constructor(
    readonly invariant: string,
    readonly at_ms: number,
    detail: string,
  ) {
    super(`${invariant} at ${at_ms} ms: ${detail}`)
  }
}

type Item =
  | { kind: 'tick'; node: number; inc: number }
  | {
      kind: 'deliver'
      from: number
      to: number
      inc_from: number
      inc_to: number
      msg: ControlMessage
      /** Last words (a terminating node's resign): flushed before the sender exited, so they survive it. */
      last_words?: boolean
    }
  | { kind: 'closed'; from: number; to: number; inc_to: number }
  /** `to` saw its data lane to `from` end (FIN, reset); it redials at once (see overlay confirmGone). */
  | { kind: 'lane-ended'; from: number; to: number; inc_to: number }
  /** The redial's answer reached `to`: refused (nothing listens: the process is gone), answered, or none. */
  | { kind: 'lane-redial'; from: number; to: number; inc_to: number }
  | {
      kind: 'snapshot-done'
      node: number
      inc: number
      ref: SnapshotRef
      ok: boolean
      content: Set<number>
      /** The service generation at the take: a late read or mark (WorldOptions.capture_read) needs the same. */
      gen: number
    }
  | { kind: 'replicated'; from: number; to: number; inc_to: number; ref: SnapshotRef }
  | { kind: 'restore-done'; node: number; inc: number; gen: number; ref: SnapshotRef | null }
  | { kind: 'restore-progress'; node: number; inc: number; gen: number }
  | { kind: 'service-up'; node: number; inc: number; gen: number }
  | {
      kind: 'merge-done'
      node: number
      inc: number
      gen: number
      winner: NodeId
      head: SnapshotRef | null
      /** A candidate merges a dead fork: the archive holds exactly `head`'s content. */
      dead_fork: boolean
    }
  | { kind: 'fault'; run: () => void }

interface SimNode {
  index: number
  id: NodeId
  priority: number
  load: number
  /** Free disk for the state it reports (null: not reported) and its site label (null: none). */
  room_bytes: number | null
  site: string | null
  alive: boolean
  /** Incarnation: bumped on every crash/restart so stale scheduled work is ignored. */
  inc: number
  /**
   * The machine itself is down (power, kernel panic): its kernel answers nothing, so its connections
   * end in silence and a redial times out. A process crash (`crash(i, 'process')`) leaves it up.
   */
  machine_down: boolean
  /** When this node last became server (ground truth), for the live-server check. */
  server_since_ms: number
  core: NodeCore
  detectors: Map<number, PhiAccrual>
  /** Peers this node's detector currently considers up. */
  up: Set<number>
  /** Complete snapshots on this node's disk (survive restarts), with copies marked corrupt. */
  store: Map<string, SnapshotRef>
  /** When each snapshot in `store` arrived there (for the released-snapshot restore check). */
  stored_ms: Map<string, number>
  corrupt: Set<string>
  /** Output commit, this incarnation: output produced so far, and how much of it each capture froze after. */
  output_made: number
  output_released: number
  output_marks: Map<string, number>
  /**
   * Per output of this incarnation (by its number, from 1): the write it reports and the service
   * generation it was made in. What a client is told when that output is released.
   */
  output_writes: Map<number, { write: number; gen: number }>
  /**
   * Content check: the service's current state as a set of abstract write ids (one per output the
   * service made while serving). Lost with the process (a restart starts empty); replaced by a restore.
   */
  state: Set<number>
  /**
   * Snapshots whose content a merge put into `state` (a heal loser's own snapshots, a dead fork's head),
   * since `state` was last replaced: applying one of them again is a fork merged twice.
   */
  merged_ids: Set<string>
  /** Union of the contents of the good snapshot copies in `store` (recomputed when a copy goes bad). */
  held_writes: Set<number>
  slow_disk: boolean
  /** Service generation: bumped on start/stop so stale completions are ignored. */
  gen: number
  service_up: boolean
  /** Service crash loop: the next this-many starts fail at once. */
  crash_loop: number
  /** Lineage head as the simulator tracks it, independently of the core. */
  head: SnapshotRef | null
  last_term: number
  /** Members the core persisted (refuse-to-split), handed back on restart like the term. */
  members: NodeId[]
  resigned_at_ms: number
  leaving: boolean
  /** Its event loop is blocked until then (a busy moment under load): what it sends leaves no earlier. */
  busy_until_ms: number
  /** The resign of a `terminate` is lost in flight (its flush did not finish before the exit). */
  last_words_lost: boolean
  held_changed_ms: number
  load_changed_ms: number
  up_since_ms: number
  /** When this node last claimed, and when its restore last progressed (ground truth, not the core's view). */
  claimed_ms: number
  progress_ms: number
}

/** The deterministic world: real cores, simulated network, drivers and stores; checker after every step. */
export class World {
  readonly nodes: SimNode[] = []
  readonly net: SimNetwork
  /** The `capacity` figures' own generator (WorldOptions.capacity_seed). */
  private readonly side: Prng
  readonly log: string[] = []
  private readonly queue = new EventQueue<Item>()
  private now_ms = 0
  /** Parent of every snapshot ever made, as the simulator saw it (independent ground truth). */
  private readonly parent = new Map<string, string | null>()
  /** Time of the last change that can legitimately disturb roles (network, crash, restart, resign, leave). */
  private last_disturbance_ms = 0
  /** When the last fault happened: the quiet phase counts from it. */
  get last_disturbance_at_ms(): number {
    return this.last_disturbance_ms
  }
  private last_network_change_ms = 0
  /** Bumped whenever liveness or links change, so components are computed once per change. */
  private topology_version = 0
  private components_cache: { version: number; value: { groups: number[][]; cliques: boolean } } | null = null
  private readonly max_steps: number
  /**
   * Pairs joined by a data lane (TCP, both ways), drawn once: the rest reach each other over the
   * hyperswarm data plane only (UDP: no connection events), as behind a NAT without a forwarded port.
   */
  private readonly lanes = new Set<string>()
  /** The node whose `terminate` is being handled (its resign is its last words). */
  private speaking: number | null = null
  lane_blips = 0
  gone_verdicts = 0
  /** When a leaving server last named each node its successor. */
  private readonly named_successor_ms = new Map<NodeId, number>()
  /** Per directed link, when its last message is delivered: a link delivers in order. */
  private readonly link_last_ms = new Map<string, number>()
  /** Per leaving server, the successor it named last; a successor it gave up on (stalled), and by whom. */
  private readonly named_by = new Map<NodeId, NodeId>()
  private readonly passed_over_by = new Map<NodeId, SimNode>()
  /** The final snapshot a leaving server handed to each successor it named. */
  private readonly named_snapshot = new Map<NodeId, string>()
  /** Output commit: every snapshot some server released output on, by id. */
  private readonly released = new Map<string, SnapshotRef>()
  /** Content check: the writes each stored snapshot holds (the service state its capture froze). */
  private readonly content = new Map<string, Set<number>>()
  private next_write = 1
  /** Content check: writes whose output some server released, still owed to the service. */
  private readonly released_writes = new Set<number>()
  /** Released writes every copy of which was unavailable at once (beyond the k-tolerance: excused). */
  excused_writes = 0
  merges = 0
  /** Merges of dead forks applied by their winner (a subset of `merges`). */
  dead_fork_merges = 0
  /** Output commit: releases checked (each against k holders). */
  releases = 0
  steps = 0
  elections = 0
  restores = 0

  constructor(
    readonly options: WorldOptions,
    private readonly rng: Prng,
  ) {
    this.net = new SimNetwork(options.nodes, rng)
    this.side = new Prng(options.capacity_seed ?? 0)
    this.max_steps = BOUNDS.max_steps_per_pair_s * options.nodes * options.nodes * 120 + 100_000
    for (let a = 0; a < options.nodes; a++)
      for (let b = a + 1; b < options.nodes; b++) if (rng.chance(0.8)) this.lanes.add(`${a}-${b}`)
    for (let i = 0; i < options.nodes; i++) {
      const priority = rng.int(1, 5) * 10
      const node: SimNode = {
        index: i,
        id: rng.hex(32),
        priority,
        load: rng.int(0, 100),
        room_bytes: this.drawRoom(),
        site: this.side.pick(SITES),
        alive: true,
        inc: 0,
        machine_down: false,
        server_since_ms: Number.POSITIVE_INFINITY,
        core: undefined as unknown as NodeCore,
        detectors: new Map(),
        up: new Set(),
        store: new Map(),
        stored_ms: new Map(),
        corrupt: new Set(),
        output_made: 0,
        output_released: 0,
        output_marks: new Map(),
        output_writes: new Map(),
        state: new Set(),
        held_writes: new Set(),
        slow_disk: rng.chance(0.15),
        gen: 0,
        service_up: false,
        crash_loop: 0,
        head: null,
        last_term: 0,
        members: [],
        resigned_at_ms: Number.NEGATIVE_INFINITY,
        leaving: false,
        busy_until_ms: 0,
        last_words_lost: false,
        held_changed_ms: 0,
        load_changed_ms: 0,
        up_since_ms: 0,
        claimed_ms: 0,
        progress_ms: 0,
        merged_ids: new Set(),
      }
      this.nodes.push(node)
      this.boot(node, rng.int(0, 300))
    }
  }

  get time_ms(): number {
    return this.now_ms
  }

  private coreConfig(node: SimNode): CoreConfig {
    return {
      ...DEFAULT_CORE_CONFIG,
      id: node.id,
      priority: node.priority,
      strategy: this.options.strategy,
      merge_direction: this.options.merge_direction,
      merge_policy: this.options.merge_policy ?? 'helper',
      snapshot_interval_ms: 2000,
      lineage_segments: this.options.lineage_segments ?? 64,
      planted_bug: this.options.planted_bug,
      output_commit: this.options.output_commit ?? null,
      ...(node.site !== null ? { site: node.site } : {}),
    }
  }

  /**
   * A node's free disk: a third report none, a third plenty, a third less than some snapshot images
   * (1 B .. 1 MiB), so an election must sometimes pass over the best-loaded node.
   */
  private drawRoom(): number | null {
    const kind = this.side.int(0, 2)
    return kind === 0 ? null : kind === 1 ? 1 << 30 : this.side.int(0, 1 << 20)
  }

  private boot(node: SimNode, delay_ms: number): void {
    node.inc += 1
    node.alive = true
    node.leaving = false
    node.gen += 1
    node.service_up = false
    node.head = null
    node.output_made = 0
    node.output_released = 0
    node.output_marks.clear()
    node.output_writes.clear()
    node.state = new Set()
    node.merged_ids = new Set()
    node.detectors.clear()
    node.up.clear()
    node.up_since_ms = this.now_ms + delay_ms
    let held: SnapshotRef | null = null
    for (const ref of node.store.values()) if (compareSnapshots(ref, held) > 0) held = ref
    node.core = new NodeCore({
      config: this.coreConfig(node),
      now_ms: this.now_ms,
      persisted: { term: node.last_term },
      members: node.members,
      held,
      stored: [...node.store.values()],
      load: node.load,
      ...(node.room_bytes !== null ? { room_bytes: node.room_bytes } : {}),
    })
    this.queue.push(this.now_ms + delay_ms, { kind: 'tick', node: node.index, inc: node.inc })
  }

  // ---------------------------------------------------------------- faults (called by the scenario)

  disturb(what: string): void {
    this.topology_version += 1
    this.last_disturbance_ms = this.now_ms
    this.log.push(`${this.now_ms} fault ${what}`)
  }

  at(at_ms: number, run: () => void): void {
    this.queue.push(at_ms, { kind: 'fault', run })
  }

  /**
   * `process`: the process dies and its machine lives on (SIGKILL, OOM, a crash): its kernel ends its
   * lanes at once and refuses redials. `machine`: the machine goes (power, panic): silence only.
   */
  crash(i: number, how: 'process' | 'machine' = 'machine'): void {
    const node = this.nodes[i]!
    if (!node.alive) return
    node.alive = false
    node.inc += 1
    node.service_up = false
    node.machine_down = how === 'machine'
    node.state = new Set()
    node.merged_ids = new Set()
    this.disturb(`crash ${i} (${how})`)
    if (how === 'process') this.lanesEnd(node)
    this.excuseLostWrites()
  }

  restart(i: number): void {
    const node = this.nodes[i]!
    if (node.alive) return
    this.disturb(`restart ${i}`)
    node.machine_down = false
    this.boot(node, 0)
  }

  /** SIGTERM/SIGINT/SIGHUP: the node's last words (a resign, lost in flight when `lost`), then it exits. */
  terminate(i: number, lost: boolean): void {
    const node = this.nodes[i]!
    if (!node.alive) return
    this.disturb(`terminate ${i}${lost ? ' (resign lost)' : ''}`)
    node.last_words_lost = lost
    this.speaking = i
    try {
      this.deliverCore(node, { type: 'terminate', reason: 'SIGTERM', now_ms: this.now_ms })
    } finally {
      this.speaking = null
    }
    this.excuseLostWrites()
  }

  /** A lane between two live nodes ends (a reset on a working network): both ends see it, both live on. */
  laneBlip(a: number, b: number): void {
    if (!this.hasLane(a, b) || !this.nodes[a]!.alive || !this.nodes[b]!.alive) return
    if (!this.net.linked(a, b)) return
    this.lane_blips += 1
    this.log.push(`${this.now_ms} lane blip ${a}-${b}`)
    for (const [from, to] of [
      [a, b],
      [b, a],
    ] as const) {
      this.queue.push(this.now_ms + 1, { kind: 'lane-ended', from, to, inc_to: this.nodes[to]!.inc })
    }
  }

  hasLane(a: number, b: number): boolean {
    return this.lanes.has(a < b ? `${a}-${b}` : `${b}-${a}`)
  }

  /** A process ended (its machine lives on): every linked peer with a lane to it sees the lane end. */
  private lanesEnd(node: SimNode): void {
    for (const to of this.nodes) {
      if (to === node || !to.alive || !this.hasLane(node.index, to.index)) continue
      if (!this.net.linked(node.index, to.index)) continue
      const delay = this.net.latency(node.index, to.index, this.rng)
      this.queue.push(this.now_ms + delay, {
        kind: 'lane-ended',
        from: node.index,
        to: to.index,
        inc_to: to.inc,
      })
    }
  }

  serviceCrash(i: number, loop: number): void {
    const node = this.nodes[i]!
    if (!node.alive || !node.service_up) return
    node.crash_loop = loop
    node.service_up = false
    node.gen += 1
    this.disturb(`service crash ${i} (loop ${loop})`)
    this.deliverCore(node, { type: 'driver', kind: 'exited', now_ms: this.now_ms })
  }

  leave(i: number): void {
    const node = this.nodes[i]!
    if (!node.alive || node.leaving) return
    node.leaving = true
    this.disturb(`leave ${i}`)
    this.deliverCore(node, { type: 'leave', now_ms: this.now_ms })
  }

  /** Node `i` is busy for `ms` (a blocked event loop under load): its messages wait until then. */
  busy(i: number, ms: number): void {
    const node = this.nodes[i]!
    node.busy_until_ms = this.now_ms + ms
    this.log.push(`${this.now_ms} busy ${i} for ${ms} ms`)
  }

  corruptCopy(i: number): void {
    const node = this.nodes[i]!
    const ids = [...node.store.keys()]
    if (ids.length === 0) return
    const id = this.rng.pick(ids)
    node.corrupt.add(id)
    this.log.push(`${this.now_ms} corrupt copy of ${id.slice(-8)} on ${i}`)
    node.held_writes = new Set()
    for (const ref of node.store.values())
      if (!node.corrupt.has(ref.id)) for (const w of this.content.get(ref.id) ?? []) node.held_writes.add(w)
    this.excuseLostWrites()
  }

  setLoad(i: number, load: number): void {
    const node = this.nodes[i]!
    node.load = load
    // Its free disk changes with it now and then (drawn apart: the scenario's faults stay the same).
    if (this.side.chance(0.5)) node.room_bytes = this.drawRoom() ?? node.room_bytes
    node.load_changed_ms = this.now_ms
    const room = node.room_bytes !== null ? { room_bytes: node.room_bytes } : {}
    if (node.alive) this.deliverCore(node, { type: 'load', load, ...room, now_ms: this.now_ms })
  }

  /**
   * One link cut or healed: two nodes that have not found each other yet, or now have. Knowledge needs
   * time to spread after it like after any network change, but it is no fault: a planned-leaves run
   * counts a claim after it.
   */
  linkChanged(a: number, b: number, up: boolean): void {
    if (up) this.net.healLink(a, b)
    else this.net.cutLink(a, b)
    this.topology_version += 1
    this.last_network_change_ms = this.now_ms
    this.log.push(`${this.now_ms} link ${a}-${b} ${up ? 'up' : 'not found yet'}`)
  }

  /**
   * Messages from `from` to `to` lost, or delivered again: a fault (`to` suspects `from`, `from` still
   * hears `to`), so the liveness bound counts from it.
   */
  oneWayChanged(from: number, to: number, blocked: boolean): void {
    this.net.blockOneWay(from, to, blocked)
    this.last_network_change_ms = this.now_ms
    this.disturb(`link ${from}>${to} ${blocked ? 'blocked one way' : 'delivers again'}`)
  }

  networkChanged(what: string): void {
    this.last_network_change_ms = this.now_ms
    this.disturb(what)
  }

  // ---------------------------------------------------------------- the loop

  /** Runs until `until_ms`; throws a Violation at the first broken invariant. */
  run(until_ms: number): void {
    for (;;) {
      const next = this.queue.peekTime()
      if (next === undefined || next > until_ms) break
      const { at_ms, item } = this.queue.pop()!
      this.now_ms = at_ms
      this.steps += 1
      if (this.steps > this.max_steps)
        this.fail('bounded-work', `over ${this.max_steps} steps: a message storm`)
      this.step(item)
      this.checkGlobal()
    }
    this.now_ms = until_ms
  }

  private step(item: Item): void {
    switch (item.kind) {
      case 'fault':
        item.run()
        return
      case 'tick': {
        const node = this.nodes[item.node]!
        if (!node.alive || node.inc !== item.inc) return
        this.detect(node)
        if (node.alive && node.inc === item.inc) this.deliverCore(node, { type: 'tick', now_ms: this.now_ms })
        if (node.alive && node.inc === item.inc) this.maybeOutput(node)
        if (node.alive && node.inc === item.inc) {
          this.queue.push(this.now_ms + BOUNDS.tick_ms, { kind: 'tick', node: node.index, inc: node.inc })
        }
        return
      }
      case 'deliver': {
        const from = this.nodes[item.from]!
        const to = this.nodes[item.to]!
        if (!to.alive || to.inc !== item.inc_to || !this.net.linked(item.from, item.to)) return
        if (from.inc !== item.inc_from && !from.alive && !item.last_words) return
        let detector = to.detectors.get(item.from)
        if (!detector) {
          detector = new PhiAccrual({
            threshold: 8,
            window_size: 100,
            min_std_dev_ms: 50,
            acceptable_pause_ms: 0,
            first_interval_ms: DEFAULT_CORE_CONFIG.heartbeat_interval_ms,
          })
          to.detectors.set(item.from, detector)
        }
        detector.heartbeat(this.now_ms)
        if (!to.up.has(item.from)) {
          to.up.add(item.from)
          this.deliverCore(to, { type: 'peer-up', peer: from.id, now_ms: this.now_ms })
        }
        if (to.alive && to.inc === item.inc_to) {
          this.deliverCore(to, { type: 'message', from: from.id, msg: item.msg, now_ms: this.now_ms })
        }
        return
      }
      case 'closed': {
        const to = this.nodes[item.to]!
        if (!to.alive || to.inc !== item.inc_to || !to.up.has(item.from)) return
        to.up.delete(item.from)
        to.detectors.delete(item.from)
        this.deliverCore(to, {
          type: 'peer-down',
          peer: this.nodes[item.from]!.id,
          reason: 'closed',
          now_ms: this.now_ms,
        })
        return
      }
      case 'lane-ended': {
        const to = this.nodes[item.to]!
        if (!to.alive || to.inc !== item.inc_to || !to.up.has(item.from)) return
        if (this.options.planted_bug === 'gone-without-confirmation') {
          this.gone(to, item.from)
          return
        }
        // The redial's SYN goes out and its answer (SYN-ACK or reset) comes back: one round trip.
        const rtt =
          this.net.latency(item.to, item.from, this.rng) + this.net.latency(item.from, item.to, this.rng)
        this.queue.push(this.now_ms + rtt, {
          kind: 'lane-redial',
          from: item.from,
          to: item.to,
          inc_to: to.inc,
        })
        return
      }
      case 'lane-redial': {
        const to = this.nodes[item.to]!
        const from = this.nodes[item.from]!
        if (!to.alive || to.inc !== item.inc_to || !to.up.has(item.from)) return
        // Refused only by a live machine with nothing listening: the process is gone. A live process
        // answers (a blip); a cut link or a machine that is down leaves the redial unanswered.
        if (from.alive || from.machine_down || !this.net.linked(item.from, item.to)) return
        this.gone(to, item.from)
        return
      }
      case 'snapshot-done': {
        const node = this.nodes[item.node]!
        if (!node.alive || node.inc !== item.inc) return
        if (!item.ok) {
          this.deliverCore(node, {
            type: 'snapshot-failed',
            id: item.ref.id,
            reason: 'disk',
            now_ms: this.now_ms,
          })
          return
        }
        const capture_read = this.options.capture_read ?? 'at-mark'
        const same_service = node.gen === item.gen && node.service_up
        // The capture's late half (see WorldOptions.capture_read): the state read, or the output marked, now.
        if (capture_read === 'after-mark' && same_service) item.content = new Set(node.state)
        if (capture_read === 'before-mark' && same_service && node.output_marks.has(item.ref.id))
          node.output_marks.set(item.ref.id, node.output_made)
        if (!this.content.has(item.ref.id)) this.content.set(item.ref.id, item.content)
        this.parent.set(item.ref.id, node.head?.id ?? null)
        node.head = item.ref
        this.hold(node, item.ref)
        this.deliverCore(node, { type: 'snapshot-stored', snapshot: item.ref, now_ms: this.now_ms })
        this.pushSnapshot(node, item.ref)
        return
      }
      case 'replicated': {
        const to = this.nodes[item.to]!
        if (!to.alive || to.inc !== item.inc_to || !this.net.linked(item.from, item.to)) return
        if (to.store.has(item.ref.id)) return
        this.hold(to, item.ref)
        this.deliverCore(to, { type: 'snapshot-stored', snapshot: item.ref, now_ms: this.now_ms })
        return
      }
      case 'restore-done': {
        const node = this.nodes[item.node]!
        if (!node.alive || node.inc !== item.inc || node.gen !== item.gen) return
        const ok = item.ref === null || this.canCollect(node, item.ref)
        if (ok) {
          if (item.ref) this.hold(node, item.ref)
          node.head = item.ref
          node.state = new Set(item.ref === null ? [] : this.content.get(item.ref.id))
          node.merged_ids = new Set()
          this.restores += 1
          this.startService(node)
        }
        this.deliverCore(node, {
          type: 'restore-done',
          ok,
          snapshot: item.ref,
          reason: ok ? undefined : 'no good copy reachable',
          now_ms: this.now_ms,
        })
        return
      }
      case 'restore-progress': {
        const node = this.nodes[item.node]!
        if (!node.alive || node.inc !== item.inc || node.gen !== item.gen) return
        node.progress_ms = this.now_ms
        this.deliverCore(node, { type: 'restore-progress', now_ms: this.now_ms })
        return
      }
      case 'service-up': {
        const node = this.nodes[item.node]!
        if (!node.alive || node.inc !== item.inc || node.gen !== item.gen || !node.service_up) return
        this.deliverCore(node, { type: 'driver', kind: 'answering', now_ms: this.now_ms })
        return
      }
      case 'merge-done': {
        const node = this.nodes[item.node]!
        if (!node.alive || node.inc !== item.inc) return
        // A heal loser's merge ends with its service generation; a dead fork's does not touch the service.
        if (!item.dead_fork && node.gen !== item.gen) return
        const winner = this.nodes.find((n) => n.id === item.winner)!
        const head = item.head
        // A dead fork is materialised from this node's own copy of its snapshot.
        const materialised =
          !item.dead_fork || (head !== null && node.store.has(head.id) && !node.corrupt.has(head.id))
        const ok =
          materialised &&
          winner.alive &&
          this.net.linked(node.index, winner.index) &&
          winner.core.role === 'server'
        // One merge per fork: a dead fork the winner already holds is answered ok, not applied again.
        if (ok && !(item.dead_fork && head !== null && winner.core.holdsFork(head))) {
          this.merges += 1
          if (item.dead_fork) this.dead_fork_merges += 1
          if (item.dead_fork && winner.merged_ids.has(head!.id))
            this.fail(
              'fork-merged-once',
              `n${node.index} merges dead fork ${head!.id} into n${winner.index}, whose service a merge gave it already`,
            )
          const archived = item.dead_fork ? (this.content.get(head!.id) ?? new Set<number>()) : node.state
          for (const w of archived) winner.state.add(w)
          if (item.dead_fork) winner.merged_ids.add(head!.id)
          else {
            // The loser's snapshots of the stint it merged (its serving term): what its offer's head covers.
            for (const [id, ref] of node.store)
              if (ref.writer === node.id && ref.term === node.core.term) winner.merged_ids.add(id)
          }
          // The winner applied the archive before it answered (runtime acceptMerge): it hears first.
          this.deliverCore(winner, { type: 'merged', from: node.id, head, now_ms: this.now_ms })
        }
        this.deliverCore(node, {
          type: 'merge-done',
          ok,
          winner: item.winner,
          reason: ok ? undefined : 'winner gone',
          now_ms: this.now_ms,
        })
        return
      }
    }
  }

  /** The service starts and answers, or (in a crash loop) exits again at once. */
  private startService(node: SimNode): void {
    const gen = node.gen
    if (node.crash_loop > 0) {
      node.crash_loop -= 1
      this.at(this.now_ms + 30, () => {
        if (node.alive && node.gen === gen)
          this.deliverCore(node, { type: 'driver', kind: 'exited', now_ms: this.now_ms })
      })
      return
    }
    node.service_up = true
    this.queue.push(this.now_ms + this.rng.int(20, 200), {
      kind: 'service-up',
      node: node.index,
      inc: node.inc,
      gen,
    })
  }

  /** A serving service answers a client now and then: its output waits at the front door (output commit). */
  private maybeOutput(node: SimNode): void {
    if (this.options.output_commit == null || node.core.role !== 'server' || !node.service_up) return
    if (!this.rng.chance(0.3)) return
    node.output_made += 1
    node.output_writes.set(node.output_made, { write: this.next_write, gen: node.gen })
    node.state.add(this.next_write++)
    this.deliverCore(node, { type: 'output-waiting', now_ms: this.now_ms })
  }

  /**
   * Output commit: a release covers the output made before the snapshot's capture froze the service,
   * and that snapshot must then be stored by k nodes other than the server.
   */
  private checkRelease(node: SimNode, ref: SnapshotRef): void {
    const k = this.options.output_commit ?? 0
    const mark = node.output_marks.get(ref.id)
    if (ref.writer !== node.id || mark === undefined)
      this.fail(
        'release-own-capture',
        `n${node.index} releases on ${ref.id.slice(-8)}, not a capture of its own`,
      )
    // A copy corrupted after it was stored (and confirmed) is a later, second fault: it still counts here.
    const holders = this.nodes.filter((n) => n !== node && n.store.has(ref.id))
    if (holders.length < k)
      this.fail(
        'released-output-stored-on-k',
        `n${node.index} released output up to ${ref.id.slice(-8)} held by ${holders.length} of k=${k} candidates`,
      )
    // What the released output told its clients must be in the snapshot that released it: an output
    // marked by this capture (made before its mark) reports a write its read of the state must have
    // seen. Only writes of the service that still runs (a restore or restart replaced older ones).
    const content = this.content.get(ref.id)
    for (let n = node.output_released + 1; mark !== undefined && content !== undefined && n <= mark; n++) {
      const made = node.output_writes.get(n)
      if (made === undefined || made.gen !== node.gen) continue
      if (!content.has(made.write))
        this.fail(
          'released-output-in-snapshot',
          `n${node.index} released output ${n} (write ${made.write}) on ${ref.id.slice(-8)}, whose capture did not see that write`,
        )
    }
    for (let n = node.output_released + 1; mark !== undefined && n <= mark; n++) node.output_writes.delete(n)
    node.output_released = Math.max(node.output_released, mark ?? 0)
    this.releases += 1
    this.released.set(ref.id, ref)
    for (const w of this.content.get(ref.id) ?? []) this.released_writes.add(w)
  }

  /**
   * A failover restores at least the newest released snapshot a reachable node holds: that node told
   * everyone (stored, then states) long enough ago, on a network quiet as long, so the claimant knew.
   */
  private checkRestoreCoversReleased(node: SimNode, ref: SnapshotRef | null): void {
    if (this.released.size === 0 || this.net.hasLoss() || !this.components().cliques) return
    if (ref !== null && this.named_snapshot.get(node.id) === ref.id) return
    const settled = (since_ms: number) => this.now_ms - since_ms >= BOUNDS.knowledge_ms
    if (!settled(this.last_network_change_ms) || !settled(node.up_since_ms)) return
    for (const i of this.groupOf(node.index)) {
      const holder = this.nodes[i]!
      if (!holder.alive || !settled(holder.up_since_ms)) continue
      for (const released of this.released.values()) {
        const at = holder.stored_ms.get(released.id)
        if (at === undefined || holder.corrupt.has(released.id) || !settled(at)) continue
        if (compareSnapshots(released, ref) > 0)
          this.fail(
            'restore-covers-released',
            `n${node.index} restores ${ref?.id.slice(-8) ?? 'nothing'} but n${i} holds ${released.id.slice(-8)}, on which output was released`,
          )
      }
    }
  }

  /**
   * Content check, the k-tolerance: a released write is excused (may be lost) only once every copy of it
   * was unavailable at the same moment: no live node held a good stored snapshot containing it, and no
   * live serving node had it in its service state. A release needs the server and k candidates to hold
   * it, so that takes at least k + 1 failures (crashes, exits by signal, corrupted copies) at once; later
   * restarts do not bring the write back into the guarantee. Checked after every such failure.
   */
  private excuseLostWrites(): void {
    if (this.released_writes.size === 0) return
    const live = this.nodes.filter((n) => n.alive)
    for (const w of this.released_writes) {
      const held = live.some(
        (n) =>
          n.held_writes.has(w) || ((n.core.role === 'server' || n.core.role === 'merging') && n.state.has(w)),
      )
      if (held) continue
      this.released_writes.delete(w)
      this.excused_writes += 1
    }
  }

  /**
   * Zero loss by content: every released write (not excused) is in the current server's service state.
   * Checked where the federation is one quiet component with one server, and after the full heal.
   */
  private checkReleasedKept(server: SimNode): void {
    for (const w of this.released_writes) {
      if (server.state.has(w)) continue
      const copies = this.nodes
        .filter((n) => n.held_writes.has(w))
        .map((n) => `n${n.index}${n.alive ? '' : '(down)'}:${n.core.role}`)
      const snaps = [...this.content].filter(([, c]) => c.has(w)).map(([id]) => id.slice(-10))
      this.fail(
        'released-write-kept',
        `write ${w} was released but server n${server.index} (t${server.core.term}) lacks it; held by ${copies.join(' ') || 'no one'} in ${snaps.slice(0, 4).join(' ')}`,
      )
    }
  }

  private hold(node: SimNode, ref: SnapshotRef): void {
    if (!node.store.has(ref.id)) node.stored_ms.set(ref.id, this.now_ms)
    node.store.set(ref.id, ref)
    node.corrupt.delete(ref.id)
    for (const w of this.content.get(ref.id) ?? []) node.held_writes.add(w)
    node.held_changed_ms = this.now_ms
  }

  /** A snapshot can be collected when this node or a linked live holder has a good copy. */
  private canCollect(node: SimNode, ref: SnapshotRef): boolean {
    const good = (n: SimNode) => n.alive && n.store.has(ref.id) && !n.corrupt.has(ref.id)
    if (good(node)) return true
    return this.nodes.some((n) => n !== node && good(n) && this.net.linked(node.index, n.index))
  }

  /** Connection events proved `peer`'s process gone: `node` acts without waiting for silence. */
  private gone(node: SimNode, peer: number): void {
    this.gone_verdicts += 1
    node.up.delete(peer)
    node.detectors.delete(peer)
    this.deliverCore(node, {
      type: 'peer-down',
      peer: this.nodes[peer]!.id,
      reason: 'gone',
      now_ms: this.now_ms,
    })
  }

  private detect(node: SimNode): void {
    for (const peer of [...node.up]) {
      const detector = node.detectors.get(peer)
      if (!detector?.suspected(this.now_ms)) continue
      node.up.delete(peer)
      node.detectors.delete(peer)
      this.deliverCore(node, {
        type: 'peer-down',
        peer: this.nodes[peer]!.id,
        reason: 'suspected',
        now_ms: this.now_ms,
      })
      if (!node.alive) return
    }
  }

  private deliverCore(node: SimNode, event: CoreEvent): void {
    const before_role = node.core.role
    const before_max = node.core.maxTerm
    const effects = node.core.handle(event)
    this.checkNode(node, before_max)
    const claimed = before_role !== 'restoring' && node.core.role === 'restoring'
    if (node.core.role !== 'server') node.server_since_ms = Number.POSITIVE_INFINITY
    else if (before_role !== 'server') node.server_since_ms = this.now_ms
    if (claimed) {
      this.checkElection(node, before_max)
      this.checkNoRace(node)
      this.checkNoLiveServer(node)
      node.claimed_ms = this.now_ms
      node.progress_ms = this.now_ms
    }
    for (const effect of effects) {
      if (!node.alive) break
      // Only the first restore of a claim must be the newest: a retry follows a failed newer one.
      if (effect.type === 'restore' && claimed) {
        this.checkRestore(node, effect.snapshot)
        this.checkRestoreCoversReleased(node, effect.snapshot)
      }
      this.execute(node, effect)
    }
  }

  private send(from: SimNode, to: SimNode, msg: ControlMessage, last_words = false): void {
    if (!to.alive || !this.net.linked(from.index, to.index)) return
    if (this.rng.chance(this.net.lossRate(from.index, to.index))) return
    const delay = this.net.latency(from.index, to.index, this.rng)
    // A connection is an ordered stream (protomux over secret-stream over UDX): jitter never lets a
    // message overtake an earlier one on the same link (a `server` state overtaking `leaving` would
    // tell the leaver's peers it serves again).
    const link = `${from.index}>${to.index}`
    const at_ms = Math.max(
      Math.max(this.now_ms, from.busy_until_ms) + delay,
      this.link_last_ms.get(link) ?? 0,
    )
    this.link_last_ms.set(link, at_ms)
    this.queue.push(at_ms, {
      kind: 'deliver',
      from: from.index,
      to: to.index,
      inc_from: from.inc,
      inc_to: to.inc,
      msg,
      ...(last_words ? { last_words } : {}),
    })
  }

  private pushSnapshot(from: SimNode, ref: SnapshotRef): void {
    for (const to of this.nodes) {
      if (to === from || !to.alive || !this.net.linked(from.index, to.index)) continue
      const transfer_ms = 20 + this.rng.int(0, 400) + (to.slow_disk ? 500 : 0)
      this.queue.push(this.now_ms + transfer_ms, {
        kind: 'replicated',
        from: from.index,
        to: to.index,
        inc_to: to.inc,
        ref,
      })
    }
  }

  private execute(node: SimNode, effect: CoreEffect): void {
    switch (effect.type) {
      case 'send': {
        const to = this.nodes.find((n) => n.id === effect.to)
        if (to) this.send(node, to, effect.msg)
        return
      }
      case 'broadcast':
        if (effect.msg.type === 'handover') {
          this.named_successor_ms.set(effect.msg.to, this.now_ms)
          this.named_snapshot.set(effect.msg.to, effect.msg.snapshot.id)
          const before = this.named_by.get(node.id)
          if (before !== undefined && before !== effect.msg.to) this.passed_over_by.set(before, node)
          this.named_by.set(node.id, effect.msg.to)
        }
        {
          const last_words = effect.msg.type === 'resign' && this.speaking === node.index
          if (last_words && node.last_words_lost) return
          for (const to of this.nodes) if (to !== node) this.send(node, to, effect.msg, last_words)
        }
        return
      case 'persist':
        node.last_term = Math.max(node.last_term, effect.term)
        if (effect.members) node.members = effect.members
        return
      case 'timeline':
        if (effect.name === 'elected') this.elections += 1
        if (effect.name === 'resigned') {
          node.resigned_at_ms = this.now_ms
          this.disturb(`resign ${node.index}`)
        }
        if (effect.name !== 'role_changed') {
          this.log.push(
            `${this.now_ms} n${node.index} ${effect.name} t${effect.term} ${JSON.stringify(effect.fields)}`,
          )
        } else
          this.log.push(
            `${this.now_ms} n${node.index} ${effect.fields.from}->${effect.fields.to} t${effect.term}`,
          )
        return
      case 'release-output':
        this.checkRelease(node, effect.snapshot)
        return
      case 'take-snapshot': {
        // The capture freezes the service now: output made so far is what this snapshot covers.
        node.output_marks.set(effect.snapshot.id, node.output_made)
        const ms = this.rng.int(10, 80) * (node.slow_disk ? 5 : 1)
        const ref: SnapshotRef = {
          ...effect.snapshot,
          size_bytes: this.rng.int(1, 1 << 20),
          image_bytes: this.side.int(1, 1 << 20),
          ...(node.site !== null ? { writer_site: node.site } : {}),
        }
        const ok = !this.rng.chance(0.02)
        const content = new Set(node.state)
        this.queue.push(this.now_ms + ms, {
          kind: 'snapshot-done',
          node: node.index,
          inc: node.inc,
          ref,
          ok,
          content,
          gen: node.gen,
        })
        return
      }
      case 'restore': {
        node.gen += 1
        node.service_up = false
        let ms = 50 + this.rng.int(0, 1000) * (node.slow_disk ? 3 : 1)
        // A hand-over successor (it restores the leaving server's final snapshot) sometimes restores a
        // big image: longer than the hand-over timeout, progressing all along; or it stalls without
        // progress (then the leaving server must move on, and this node give way).
        const from_leaving = effect.sources.some((id) => this.nodes.find((n) => n.id === id)?.leaving)
        if (from_leaving && this.rng.chance(0.3)) {
          ms = DEFAULT_CORE_CONFIG.handover_timeout_ms + this.rng.int(1000, 4000)
          for (let t = this.rng.int(300, 900); t < ms; t += this.rng.int(300, 900)) {
            this.queue.push(this.now_ms + t, {
              kind: 'restore-progress',
              node: node.index,
              inc: node.inc,
              gen: node.gen,
            })
          }
        } else if (from_leaving && this.rng.chance(0.1)) {
          // A stalled restore is a fault like a crash: the liveness clock starts again when the leaving
          // server may give up on it (the next successor then needs its own restore time).
          ms = DEFAULT_CORE_CONFIG.handover_timeout_ms + this.rng.int(2000, 3000)
          const index = node.index
          this.at(this.now_ms + DEFAULT_CORE_CONFIG.handover_timeout_ms, () =>
            this.disturb(`restore stalled ${index}`),
          )
        }
        this.queue.push(this.now_ms + ms, {
          kind: 'restore-done',
          node: node.index,
          inc: node.inc,
          gen: node.gen,
          ref: effect.snapshot,
        })
        return
      }
      case 'cancel-restore':
      case 'stop-service':
        node.gen += 1
        node.service_up = false
        return
      case 'start-service':
        if (effect.from === 'snapshot' && effect.snapshot !== null) {
          node.state = new Set(this.content.get(effect.snapshot.id))
          node.merged_ids = new Set()
        }
        node.gen += 1
        this.startService(node)
        return
      case 'run-merge': {
        // A dead fork is merged by a candidate: no service of its own to stop.
        if (!effect.dead_fork) {
          node.gen += 1
          node.service_up = false
        }
        const dead_fork = effect.dead_fork === true
        const head = dead_fork ? effect.head : node.head
        this.checkFork(node, effect.winner, effect.fork?.id ?? null, head, dead_fork)
        const ms = 100 + this.rng.int(0, 1500)
        this.queue.push(this.now_ms + ms, {
          kind: 'merge-done',
          node: node.index,
          inc: node.inc,
          gen: node.gen,
          winner: effect.winner,
          head: effect.head,
          dead_fork,
        })
        return
      }
      case 'exit': {
        node.alive = false
        node.inc += 1
        node.service_up = false
        this.disturb(`exit ${node.index}`)
        this.lanesEnd(node) // the process exits, its machine lives on
        for (const to of this.nodes) {
          if (to === node || !to.alive || !this.net.linked(node.index, to.index)) continue
          const delay = this.net.latency(node.index, to.index, this.rng)
          this.queue.push(this.now_ms + delay, {
            kind: 'closed',
            from: node.index,
            to: to.index,
            inc_to: to.inc,
          })
        }
        return
      }
    }
  }

  // ---------------------------------------------------------------- invariants

  private fail(invariant: string, detail: string): never {
    throw new Violation(invariant, this.now_ms, detail)
  }

  /** Per-node checks after every event the node handles. */
  private checkNode(node: SimNode, before_max: number): void {
    const core = node.core
    if (!ROLES.includes(core.role)) this.fail('one-role', `n${node.index} has role ${core.role}`)
    if (core.maxTerm < before_max || core.maxTerm < node.last_term) {
      this.fail(
        'terms-never-go-back',
        `n${node.index} term ${core.maxTerm} after ${Math.max(before_max, node.last_term)}`,
      )
    }
    node.last_term = Math.max(node.last_term, core.maxTerm)
  }

  /** Quiet long enough that every node in it knows the others' current state. */
  private knowledgeCurrent(group: number[]): boolean {
    if (this.net.hasLoss() || !this.components().cliques) return false
    if (this.now_ms - this.last_network_change_ms < BOUNDS.knowledge_ms) return false
    return group.every((i) => {
      const n = this.nodes[i]!
      return (
        this.now_ms - n.up_since_ms >= BOUNDS.knowledge_ms &&
        this.now_ms - n.held_changed_ms >= BOUNDS.knowledge_ms &&
        this.now_ms - n.load_changed_ms >= BOUNDS.knowledge_ms
      )
    })
  }

  private components(): { groups: number[][]; cliques: boolean } {
    if (this.components_cache?.version !== this.topology_version) {
      const alive = this.nodes.map((n) => n.alive)
      this.components_cache = { version: this.topology_version, value: this.net.components(alive) }
    }
    return this.components_cache.value
  }

  private groupOf(index: number): number[] {
    return this.components().groups.find((g) => g.includes(index)) ?? [index]
  }

  private heldGood(n: SimNode): SnapshotRef | null {
    let best: SnapshotRef | null = null
    for (const ref of n.store.values())
      if (!n.corrupt.has(ref.id) && compareSnapshots(ref, best) > 0) best = ref
    return best
  }

  /**
   * `capacity`: what an election in `group` needs (room for the newest snapshot its nodes hold, its
   * writer's site), as every node there sees it once knowledge is current; null otherwise.
   */
  private capacityNeedOf(group: number[]): CapacityNeed | null {
    if (this.options.strategy !== 'capacity') return null
    let newest: SnapshotRef | null = null
    for (const i of group) {
      const n = this.nodes[i]!
      if (n.alive && compareSnapshots(n.core.held, newest) > 0) newest = n.core.held
    }
    return newest === null ? null : capacityNeed(newest)
  }

  /** A node that just claimed must be its component's pick by the strategy, and its term must grow. */
  private checkElection(node: SimNode, before_max: number): void {
    if (node.core.term <= before_max) {
      this.fail('claim-term-grows', `n${node.index} claimed term ${node.core.term} having seen ${before_max}`)
    }
    const group = this.groupOf(node.index)
    if (!this.knowledgeCurrent(group)) return
    // A named successor was the best the leaving server could reach when it named it; a better node
    // may have come back since (one found late, or under refuse-to-split once a majority supports the
    // successor): the leaving server's choice, not an election, gave it the service.
    const named_ms = this.named_successor_ms.get(node.id)
    if (named_ms !== undefined && this.now_ms - named_ms < DEFAULT_CORE_CONFIG.handover_timeout_ms) return
    const strategy = this.options.strategy
    const need = this.capacityNeedOf(group)
    const contender = (n: SimNode) => ({
      id: n.id,
      priority: n.priority,
      load: n.load,
      snapshot: n.core.held,
      ...capacityFlags({ ...n, role: 'candidate' }, need),
    })
    const me = contender(node)
    if (me.room === false) {
      this.fail(
        'elected-with-room',
        `n${node.index} claimed with ${node.room_bytes} bytes free for a ${need?.bytes} byte image`,
      )
    }
    for (const i of group) {
      const other = this.nodes[i]!
      if (other === node || other.leaving) continue
      // A successor the leaving server gave up on (its restore stalled) is passed over for that hand-over.
      const passed_by = this.passed_over_by.get(other.id)
      if (passed_by?.alive && passed_by.core.handingOver) continue
      // Eligibility returning at the end of a cooldown is news like any other: it needs time to spread.
      const cooldown_ms = DEFAULT_CORE_CONFIG.resign_cooldown_ms + BOUNDS.knowledge_ms
      if (this.now_ms - other.resigned_at_ms < cooldown_ms) continue
      if (other.core.role !== 'candidate' && other.core.role !== 'electing') continue
      if (compareContenders(strategy, contender(other), me) > 0) {
        this.fail(
          'elected-by-strategy',
          `n${node.index} (prio ${node.priority}) claimed, but n${i} (prio ${other.priority}) outranks it under ${strategy}`,
        )
      }
    }
  }

  /**
   * No node claims while another in its component restores and progresses (claimed long enough ago
   * for everyone to know): a second claim there is a second server, during a planned hand-over too.
   */
  private checkNoRace(node: SimNode): void {
    const group = this.groupOf(node.index)
    if (!this.knowledgeCurrent(group)) return
    const margin_ms = BOUNDS.knowledge_ms
    for (const i of group) {
      const other = this.nodes[i]!
      if (other === node || !other.alive || other.core.role !== 'restoring') continue
      if (this.now_ms - other.claimed_ms < margin_ms) continue
      if (this.now_ms - other.progress_ms > DEFAULT_CORE_CONFIG.handover_timeout_ms - margin_ms) continue
      this.fail(
        'no-claim-against-progressing-restore',
        `n${node.index} claimed while n${i} restores (claimed ${this.now_ms - other.claimed_ms} ms ago, progressed ${this.now_ms - other.progress_ms} ms ago; as n${node.index} sees it: ${JSON.stringify(this.seen(node, other))})`,
      )
    }
  }

  /**
   * No claim while a live server serves in the claimant's component and everyone there knows it: on a
   * clique without loss, quiet for the knowledge bound, silence never suspects a live server, so no
   * evidence path (a lane that ended, a resign) may make a second server there either.
   */
  private checkNoLiveServer(node: SimNode): void {
    const group = this.groupOf(node.index)
    if (!this.knowledgeCurrent(group)) return
    for (const i of group) {
      const other = this.nodes[i]!
      if (other === node || !other.alive || other.core.role !== 'server' || other.core.handingOver) continue
      if (this.now_ms - other.server_since_ms < BOUNDS.knowledge_ms) continue
      this.fail(
        'no-claim-against-live-server',
        `n${node.index} claimed while n${i} serves (for ${this.now_ms - other.server_since_ms} ms) in its component`,
      )
    }
  }

  /** What `node`'s core knows of `other` (for violation messages). */
  private seen(node: SimNode, other: SimNode): Record<string, unknown> | null {
    const p = node.core.peers().find((q) => q.id === other.id)
    if (!p) return null
    const { reachable, role, term, progress, progress_ms, last_heard_ms } = p
    return { reachable, role, term, progress, progress_ms, last_heard_ms, up: node.up.has(other.index) }
  }

  /** A restore starts from the newest complete snapshot the component holds. */
  private checkRestore(node: SimNode, ref: SnapshotRef | null): void {
    const group = this.groupOf(node.index)
    if (!this.knowledgeCurrent(group)) return
    // A hand-over successor restores the leaving server's final snapshot (its newest acknowledged state),
    // even when an older fork holds a snapshot of a higher term.
    if (ref !== null && this.named_snapshot.get(node.id) === ref.id) return
    for (const i of group) {
      const held = this.heldGood(this.nodes[i]!)
      if (held && compareSnapshots(held, ref) > 0 && !this.nodes[i]!.corrupt.has(held.id)) {
        this.fail(
          'restore-newest',
          `n${node.index} restores ${ref?.id.slice(-6) ?? 'nothing'} but n${i} holds ${held.id.slice(-6)}`,
        )
      }
    }
  }

  private ancestors(id: string | null): string[] {
    const out: string[] = []
    let cur = id
    while (cur !== null && cur !== undefined) {
      out.push(cur)
      cur = this.parent.get(cur) ?? null
    }
    return out
  }

  /** The merge uses the newest snapshot common to both lineages, by the simulator's own records. */
  /**
   * A heal's loser merges from the newest snapshot common to both lineages (the winner's merged forks
   * count as its own, those merged into its service since its last snapshot too), by the simulator's own
   * records. A dead fork's merge may use an older common point
   * (the candidate's view of the server's head lags; the archive then holds more, which idempotent merge
   * helpers absorb), never one the winner does not hold: that would drop changes.
   */
  private checkFork(
    loser: SimNode,
    winner_id: NodeId,
    fork: string | null,
    head: SnapshotRef | null,
    dead_fork: boolean,
  ): void {
    const winner = this.nodes.find((n) => n.id === winner_id)!
    // A dead fork offered on a stale view to a node that no longer serves is refused there, unapplied.
    if (dead_fork && (!winner.alive || winner.core.role !== 'server')) return
    const lineage = new Set(this.ancestors(winner.head?.id ?? null))
    const theirs = new Set(lineage)
    for (const seg of winner.head?.merged ?? [])
      for (const id of this.ancestors(`${seg.writer}:${seg.term}:${seg.seq}`)) theirs.add(id)
    // Merged into its service since its last snapshot (the winner announces them beside its head).
    for (const merged of winner.merged_ids) for (const id of this.ancestors(merged)) theirs.add(id)
    const mine = this.ancestors(head?.id ?? null)
    const truth = mine.find((id) => theirs.has(id)) ?? null
    // The winner's newest snapshot (the one that records a merge it just took in) may not have reached
    // the loser yet: its lineage alone then gives the fork, an older one.
    const by_lineage = mine.find((id) => lineage.has(id)) ?? null
    const held = fork === null || (theirs.has(fork) && mine.includes(fork))
    if (dead_fork ? !held : truth !== fork && by_lineage !== fork) {
      this.fail(
        'merge-fork-point',
        `n${loser.index} merges into n${winner.index} from ${fork} but the fork is ${truth}`,
      )
    }
  }

  private refuses(): boolean {
    return this.options.merge_policy === 'refuse-to-split'
  }

  /**
   * refuse-to-split safety, at every step: at most one live node serves (server or restoring; a server
   * handing over has stopped its service). Nothing is waited for: this holds through every fault.
   */
  private checkOneServing(): void {
    const serving = this.nodes.filter(
      (n) => n.alive && (n.core.role === 'server' || n.core.role === 'restoring') && !n.core.handingOver,
    )
    if (serving.length > 1) {
      this.fail(
        'one-serving-node',
        `${serving.map((n) => `n${n.index}:${n.core.role} t${n.core.term}`).join(' ')} serve at once`,
      )
    }
  }

  /** refuse-to-split: members are every node but those that left and are gone. */
  private isMajority(group: number[]): boolean {
    const members = this.nodes.filter((n) => !(n.leaving && !n.alive)).length
    return 2 * group.length > members
  }

  /**
   * Component-wide checks: once quiet for the liveness bound, each component has exactly one server;
   * under refuse-to-split a component with a strict majority has one and a minority component none.
   */
  private checkGlobal(): void {
    if (this.refuses()) this.checkOneServing()
    if (this.now_ms - this.last_disturbance_ms < BOUNDS.liveness_ms) return
    if (this.net.hasLoss()) return
    const { groups, cliques } = this.components()
    if (!cliques) return
    for (const group of groups) {
      const servers = group.filter((i) => this.nodes[i]!.core.role === 'server')
      if (this.refuses() && !this.isMajority(group)) {
        if (servers.length > 0) {
          const roles = group.map((i) => `n${i}:${this.nodes[i]!.core.role}`).join(' ')
          this.fail('no-server-in-minority', `${servers.length} servers in a minority component: ${roles}`)
        }
        continue
      }
      if (servers.length === 0 && this.roomless(group)) continue
      if (servers.length !== 1) {
        const roles = group.map((i) => `n${i}:${this.nodes[i]!.core.role}`).join(' ')
        this.fail(
          servers.length === 0 ? 'liveness-server-exists' : 'one-server-per-component',
          `${servers.length} servers in component after ${BOUNDS.liveness_ms} ms quiet: ${roles}`,
        )
      }
    }
    // One component, quiet for the liveness bound: its one server owes every released write.
    const only =
      groups.length === 1 ? groups[0]!.find((i) => this.nodes[i]!.core.role === 'server') : undefined
    if (only !== undefined) this.checkReleasedKept(this.nodes[only]!)
  }

  /**
   * `capacity`: no node of `group` has room for the snapshot its election restores, so it elects
   * nobody (by design: NodeCore's eligible() leaves such nodes out). Judged as the core judges it.
   */
  private roomless(group: number[]): boolean {
    const need = this.capacityNeedOf(group)
    return group.every((i) => {
      const n = this.nodes[i]!
      return capacityFlags({ ...n, role: n.core.role }, need).room === false
    })
  }

  /**
   * Final check after a full heal: exactly one server in the whole federation (none when no node has
   * room for the snapshot, the exemption checkGlobal makes too).
   */
  checkHealed(): void {
    const alive = this.nodes.filter((n) => n.alive)
    const servers = alive.filter((n) => n.core.role === 'server')
    if (servers.length === 0 && this.roomless(alive.map((n) => n.index))) return
    if (servers.length !== 1) {
      this.fail(
        'one-server-after-heal',
        `${servers.length} servers: ${alive.map((n) => `n${n.index}:${n.core.role}`).join(' ')}`,
      )
    }
    const server = servers[0]!
    this.checkReleasedKept(server)
    for (const n of alive) {
      if (n !== server && n.core.server !== server.id) {
        this.fail(
          'all-follow-after-heal',
          `n${n.index} follows ${n.core.server?.slice(0, 8)} not n${server.index}`,
        )
      }
    }
  }
}
