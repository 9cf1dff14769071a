import type { Prng } from '../../test/sim/prng.ts'
import type { LabNode } from './lab-federation.ts'
import type { LabNet } from './lab-net.ts'

export interface NemesisContext {
  lab: LabNet
  nodes: LabNode[]
  rng: Prng
  /** How long a fault lasts (ms); each nemesis is bounded by a small multiple of it. */
  hold_ms: number
  /** A line of the run's timeline. */
  note(what: string): void
  sleep(ms: number): Promise<void>
  /** Re-creates a node's data directory (same name, a new identity, joined by invite), node stopped. */
  wipe(node: LabNode): Promise<void>
}

export interface FaultApplied {
  /** Epoch ms when the fault began and when it was healed. */
  fault_t: number
  heal_t: number
  /** Nodes whose view of the server the fault touched: an election by any other is a false failover. */
  touched: number[]
  /** Only links were cut (no process, disk or clock fault): nothing acknowledged may be lost. */
  pure_partition: boolean
  /** What the seed drew (halves, probabilities, victims), for the timeline and the JSON. */
  params: Record<string, unknown>
}

export interface Nemesis {
  name: string
  /** Injects the fault on a settled federation whose server is `server`, holds it, heals it. */
  run(ctx: NemesisContext, server: number): Promise<FaultApplied>
}

/**
 * SIGTERM, as a person stopping a node would; a node not gone within 15 s gets SIGKILL (noted: a node
 * that logs "node stopped" and does not exit is a finding of its own).
 */
export async function stopNode(ctx: NemesisContext, node: LabNode): Promise<void> {
  node.signal('SIGTERM')
  try {
    await node.waitExit(15_000)
  } catch {
    ctx.note(`n${node.index} did not exit within 15 s of SIGTERM: SIGKILL`)
    node.signal('SIGKILL')
    await node.waitExit(10_000)
  }
}

export const others = (ctx: NemesisContext, i: number) => ctx.nodes.map((n) => n.index).filter((j) => j !== i)

/** `at` drops (a share `probability` of) every packet from `from`: a packet filter in `at`'s namespace. */
export async function drop(ctx: NemesisContext, at: number, from: number, probability = 1): Promise<void> {
  const sample =
    probability < 1 ? ['-m', 'statistic', '--mode', 'random', '--probability', String(probability)] : []
  const source = ctx.nodes[from]!.host.address
  await ctx.lab.exec(ctx.nodes[at]!.host, ['iptables', '-A', 'INPUT', '-s', source, ...sample, '-j', 'DROP'])
}

export async function undrop(ctx: NemesisContext, at: number, from: number): Promise<void> {
  const source = ctx.nodes[from]!.host.address
  await ctx.lab.exec(ctx.nodes[at]!.host, ['iptables', '-D', 'INPUT', '-s', source, '-j', 'DROP'])
}

export async function cut(ctx: NemesisContext, a: number, b: number): Promise<void> {
  await drop(ctx, a, b)
  await drop(ctx, b, a)
}

/** Removes every packet filter the nemeses added (each node's INPUT chain). */
export async function healAll(ctx: Pick<NemesisContext, 'lab' | 'nodes'>): Promise<void> {
  for (const node of ctx.nodes) await ctx.lab.exec(node.host, ['iptables', '-F', 'INPUT'])
}

/** Cuts every link between `side` and the rest, holds, heals. */
export async function partition(ctx: NemesisContext, side: number[], params: Record<string, unknown>) {
  const rest = ctx.nodes.map((n) => n.index).filter((i) => !side.includes(i))
  const fault_t = Date.now()
  for (const a of side) for (const b of rest) await cut(ctx, a, b)
  ctx.note(`partition [${side.map((i) => `n${i}`).join(' ')}] | [${rest.map((i) => `n${i}`).join(' ')}]`)
  await ctx.sleep(ctx.hold_ms)
  await healAll(ctx)
  const heal_t = Date.now()
  ctx.note('healed: every packet filter removed')
  return { fault_t, heal_t, side, rest, params }
}

export const partitionServer: Nemesis = {
  name: 'partition-server',
  async run(ctx, server) {
    const p = await partition(ctx, [server], {})
    return { ...p, touched: others(ctx, server), pure_partition: true, params: { isolated: `n${server}` } }
  },
}

export const partitionHalves: Nemesis = {
  name: 'partition-halves',
  async run(ctx, server) {
    const order = ctx.rng.shuffle(ctx.nodes.map((n) => n.index))
    const size = ctx.rng.int(1, Math.max(1, Math.floor(ctx.nodes.length / 2)))
    const side = order.slice(0, size)
    const p = await partition(ctx, side, {})
    const without_server = side.includes(server) ? p.rest : side
    return {
      fault_t: p.fault_t,
      heal_t: p.heal_t,
      touched: without_server,
      pure_partition: true,
      params: { side: side.map((i) => `n${i}`) },
    }
  },
}

export const partitionOneWay: Nemesis = {
  name: 'partition-oneway',
  async run(ctx, server) {
    // `deaf` stops hearing `speaker`; the speaker still hears the deaf one. Drawn among the server's links.
    const peer = ctx.rng.pick(others(ctx, server))
    const [speaker, deaf] = ctx.rng.chance(0.5) ? [server, peer] : [peer, server]
    const fault_t = Date.now()
    await drop(ctx, deaf, speaker)
    ctx.note(`one-way: n${deaf} no longer hears n${speaker} (n${speaker} still hears n${deaf})`)
    await ctx.sleep(ctx.hold_ms)
    await healAll(ctx)
    const heal_t = Date.now()
    ctx.note('healed: every packet filter removed')
    return {
      fault_t,
      heal_t,
      touched: [peer],
      pure_partition: true,
      params: { speaker: `n${speaker}`, deaf: `n${deaf}` },
    }
  },
}

/** SIGKILL or SIGSTOP of the server's whole machine (node and service process groups). */
export function processFault(name: string, signal: 'SIGKILL' | 'SIGSTOP'): Nemesis {
  return {
    name,
    async run(ctx, server) {
      const node = ctx.nodes[server]!
      const fault_t = Date.now()
      node.signal(signal)
      ctx.note(`${signal} n${server} (node and service)`)
      await ctx.sleep(ctx.hold_ms)
      if (signal === 'SIGSTOP') {
        node.signal('SIGCONT')
        ctx.note(`SIGCONT n${server}`)
      } else {
        await node.waitExit(10_000)
        node.start()
        ctx.note(`n${server} restarted with its data directory`)
      }
      return { fault_t, heal_t: Date.now(), touched: others(ctx, server), pure_partition: false, params: {} }
    },
  }
}

export const flapping: Nemesis = {
  name: 'flapping',
  async run(ctx, server) {
    // Links cut one by one in random order, each restored after a random time: at most 2 n cuts.
    const links: [number, number][] = []
    for (const a of ctx.nodes)
      for (const b of ctx.nodes) if (a.index < b.index) links.push([a.index, b.index])
    const cuts = ctx.rng.int(links.length, 2 * links.length)
    const fault_t = Date.now()
    const touched = new Set<number>()
    const deadline = fault_t + 2 * ctx.hold_ms
    for (let k = 0; k < cuts && Date.now() < deadline; k++) {
      const [a, b] = ctx.rng.pick(links)
      const down_ms = ctx.rng.int(300, 3000)
      if (a === server) touched.add(b)
      if (b === server) touched.add(a)
      await cut(ctx, a, b)
      ctx.note(`flap: n${a} x n${b} for ${down_ms} ms`)
      await ctx.sleep(down_ms)
      await undrop(ctx, a, b)
      await undrop(ctx, b, a)
    }
    await healAll(ctx)
    ctx.note('healed: every packet filter removed')
    return { fault_t, heal_t: Date.now(), touched: [...touched], pure_partition: true, params: { cuts } }
  },
}

export const loss: Nemesis = {
  name: 'loss',
  async run(ctx) {
    const percent = ctx.rng.int(5, 30)
    const fault_t = Date.now()
    for (const a of ctx.nodes)
      for (const b of others(ctx, a.index)) await drop(ctx, a.index, b, percent / 100)
    ctx.note(`loss: every node drops ${percent} % of what it receives from every other node`)
    await ctx.sleep(ctx.hold_ms)
    await healAll(ctx)
    ctx.note('healed: every packet filter removed')
    // The issue's bar: no election at all at 10 % or less; above it, elections are not counted as false.
    const touched = percent <= 10 ? [] : ctx.nodes.map((n) => n.index)
    return { fault_t, heal_t: Date.now(), touched, pure_partition: true, params: { loss_percent: percent } }
  },
}

/** A node restarted with its wall clock 60 s ahead or behind, then the server isolated and healed. */
export const clockSkew: Nemesis = {
  name: 'clock-skew',
  async run(ctx, server) {
    const victim = ctx.nodes[ctx.rng.pick(others(ctx, server))]!
    const offset_ms = ctx.rng.chance(0.5) ? 60_000 : -60_000
    const restart = async (clock_ms: number) => {
      await stopNode(ctx, victim)
      victim.setClock(clock_ms)
      victim.start()
    }
    await restart(offset_ms)
    ctx.note(`n${victim.index} restarted with its clock ${offset_ms / 1000} s off`)
    await ctx.sleep(ctx.hold_ms / 2)
    const p = await partition(ctx, [server], {})
    await restart(0)
    ctx.note(`n${victim.index} restarted with the true time`)
    return {
      fault_t: p.fault_t,
      heal_t: p.heal_t,
      touched: others(ctx, server),
      pure_partition: false,
      params: { skewed: `n${victim.index}`, offset_ms },
    }
  },
}

export const restartWithData: Nemesis = {
  name: 'restart-data',
  async run(ctx) {
    const victim = ctx.rng.pick(ctx.nodes)
    const fault_t = Date.now()
    await stopNode(ctx, victim)
    ctx.note(`n${victim.index} stopped (SIGTERM)`)
    await ctx.sleep(ctx.hold_ms / 2)
    victim.start()
    ctx.note(`n${victim.index} restarted with its data directory`)
    return {
      fault_t,
      heal_t: Date.now(),
      touched: ctx.nodes.map((n) => n.index),
      pure_partition: false,
      params: { restarted: `n${victim.index}` },
    }
  },
}

export const restartEmpty: Nemesis = {
  name: 'restart-empty',
  async run(ctx, server) {
    const victim = ctx.nodes[ctx.rng.pick(others(ctx, server))]!
    const fault_t = Date.now()
    victim.signal('SIGKILL')
    await victim.waitExit(15_000)
    await ctx.wipe(victim)
    ctx.note(`n${victim.index} killed, its data directory gone; joined again by invite`)
    victim.start()
    return {
      fault_t,
      heal_t: Date.now(),
      touched: [],
      pure_partition: false,
      params: { wiped: `n${victim.index}` },
    }
  },
}

/** The server's service directory (a small tmpfs of the lab's) filled by a ballast file, then freed. */
export const diskFull: Nemesis = {
  name: 'disk-full',
  async run(ctx, server) {
    const node = ctx.nodes[server]!
    const disk = `${node.data_dir}/service`
    const ballast = `${disk}/ballast`
    const avail = await ctx.lab.exec(node.host, ['df', '--output=avail', '-B1', disk])
    const bytes = Number(avail.trim().split('\n').at(-1))
    if (!Number.isFinite(bytes)) throw new Error(`df gave no free size: ${avail}`)
    const fault_t = Date.now()
    // dd until ENOSPC (bounded by the size of the tmpfs): it fails when the disk is full, as it should.
    await ctx.lab.exec(node.host, ['dd', 'if=/dev/zero', `of=${ballast}`, 'bs=1M']).catch(() => {})
    const after = await ctx.lab.exec(node.host, ['df', '--output=avail', '-B1', disk])
    ctx.note(
      `n${server}'s service directory full: ${bytes} bytes of ballast, ${after.trim().split('\n').at(-1)} left`,
    )
    await ctx.sleep(ctx.hold_ms)
    await ctx.lab.exec(node.host, ['rm', '-f', ballast])
    ctx.note(`n${server}'s ballast removed`)
    return {
      fault_t,
      heal_t: Date.now(),
      touched: others(ctx, server),
      pure_partition: false,
      params: { ballast_bytes: bytes },
    }
  },
}
