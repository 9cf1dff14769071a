/**
 * Process faults beyond the whole machine (issue 20): the service alone, the node alone while its
 * service lives, two and three machines at once, and kills timed by what the nodes report (a capture's
 * freeze, a snapshot handed to replication, an election's restore, a merge) rather than by sleeps.
 */
import { readFileSync } from 'node:fs'
import { childrenOf, type LogRecord } from '../../src/demo/local-federation.ts'
import type { LabNode } from './lab-federation.ts'
import { type FaultApplied, type Nemesis, type NemesisContext, others, partition } from './nemeses.ts'

/**
 * The process group of a node's service: the `service_pid` of its latest `service_started` record (the
 * driver starts the service in a group of its own), if that process is still a child of the node (the
 * node has other children: helpers, the fence).
 */
function serviceGroups(node: LabNode): number[] {
  if (node.pid === undefined) return []
  const started = node.records.findLast((r) => r.event === 'service_started')
  const pid = Number(started?.['service_pid'])
  return Number.isInteger(pid) && childrenOf(node.pid).includes(pid) ? [pid] : []
}

function signalGroups(groups: number[], signal: NodeJS.Signals): void {
  for (const group of groups) {
    try {
      process.kill(-group, signal)
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error
    }
  }
}

/**
 * The next log record (from now on, not the past ones) of any of `nodes` that matches, or null after
 * `timeout_ms`. Resolves with the node that wrote it.
 */
export function nextRecord(
  nodes: LabNode[],
  match: (record: LogRecord) => boolean,
  timeout_ms: number,
): Promise<{ node: LabNode; record: LogRecord } | null> {
  return new Promise((resolve) => {
    const listeners = new Map<LabNode, (record: LogRecord) => void>()
    const done = (found: { node: LabNode; record: LogRecord } | null) => {
      clearTimeout(timer)
      for (const [node, listener] of listeners) node.off('record', listener)
      resolve(found)
    }
    const timer = setTimeout(() => done(null), timeout_ms)
    for (const node of nodes) {
      const listener = (record: LogRecord) => {
        if (match(record)) done({ node, record })
      }
      listeners.set(node, listener)
      node.on('record', listener)
    }
  })
}

/** Restarts every node of `victims` that is not running (after waiting for its exit). */
async function restart(ctx: NemesisContext, victims: LabNode[]): Promise<void> {
  for (const node of victims) {
    await node.waitExit(10_000)
    node.start()
  }
  ctx.note(`${victims.map((n) => `n${n.index}`).join(' ')} restarted with their data directories`)
}

/**
 * SIGKILL or SIGSTOP of one part of the server's machine: its service alone (the node lives on and must
 * notice; a killed service is the node's to restart) or its node process alone (the service keeps
 * running, orphaned or unwatched; a killed node is restarted after the hold).
 */
function partFault(name: string, part: 'service' | 'node', signal: 'SIGKILL' | 'SIGSTOP'): Nemesis {
  return {
    name,
    async run(ctx, server) {
      const node = ctx.nodes[server]!
      const groups = serviceGroups(node)
      if (part === 'service' && groups.length === 0)
        throw new Error(`n${server} serves but runs no service process`)
      const hit = (s: NodeJS.Signals) =>
        part === 'service' ? signalGroups(groups, s) : node.signal(s, 'node')
      const fault_t = Date.now()
      hit(signal)
      ctx.note(
        part === 'service'
          ? `${signal} n${server}'s service alone (process group ${groups.join(' ')})`
          : `${signal} n${server}'s node process alone (its service, group ${groups.join(' ')}, lives)`,
      )
      await ctx.sleep(ctx.hold_ms)
      if (signal === 'SIGSTOP') {
        hit('SIGCONT')
        ctx.note(`SIGCONT n${server}'s ${part}`)
      } else if (part === 'node') await restart(ctx, [node])
      return { fault_t, heal_t: Date.now(), touched: others(ctx, server), pure_partition: false, params: {} }
    },
  }
}

/** SIGKILL of `count` machines at once: the server and count-1 others drawn from the seed. */
function simultaneous(count: number): Nemesis {
  return {
    name: `kill-${count}`,
    async run(ctx, server) {
      const victims = [server, ...ctx.rng.shuffle(others(ctx, server)).slice(0, count - 1)]
      const fault_t = Date.now()
      for (const i of victims) ctx.nodes[i]!.signal('SIGKILL')
      ctx.note(`SIGKILL ${victims.map((i) => `n${i}`).join(' ')} at once (node and service)`)
      await ctx.sleep(ctx.hold_ms)
      await restart(
        ctx,
        victims.map((i) => ctx.nodes[i]!),
      )
      return {
        fault_t,
        heal_t: Date.now(),
        touched: ctx.nodes.map((n) => n.index),
        pure_partition: false,
        params: { killed: victims.map((i) => `n${i}`) },
      }
    },
  }
}

/** The state letter of a process (`T`: stopped) from /proc, or null when it is gone. */
function processState(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3)
  } catch {
    return null
  }
}

/**
 * Resolves when the server's service is frozen by a capture (its group leader stopped, as the process
 * driver's capture leaves it): read from /proc every ms, the only sign from outside that a capture is
 * under way (the node logs `service_paused` after the freeze has ended). Null after `timeout_ms`.
 */
async function untilFrozen(node: LabNode, timeout_ms: number): Promise<number | null> {
  const deadline = Date.now() + timeout_ms
  while (Date.now() < deadline) {
    for (const group of serviceGroups(node)) if (processState(group) === 'T') return group
    await new Promise((resolve) => setTimeout(resolve, 1))
  }
  return null
}

const CAPTURE_WAIT_MS = 30_000

/**
 * SIGKILL of the server's machine the moment `moment` resolves (it says what it saw, or null when the
 * moment did not come within CAPTURE_WAIT_MS: killed anyway), held, then restarted.
 */
function killServerAt(
  name: string,
  moment: (node: LabNode) => Promise<{ note: string; params: Record<string, unknown> } | null>,
): Nemesis {
  return {
    name,
    async run(ctx, server) {
      const node = ctx.nodes[server]!
      const seen = await moment(node)
      const fault_t = Date.now()
      node.signal('SIGKILL')
      ctx.note(
        seen === null
          ? `SIGKILL n${server}: the moment did not come within ${CAPTURE_WAIT_MS} ms (killed anyway)`
          : `SIGKILL n${server} ${seen.note}`,
      )
      await ctx.sleep(ctx.hold_ms)
      await restart(ctx, [node])
      return {
        fault_t,
        heal_t: Date.now(),
        touched: others(ctx, server),
        pure_partition: false,
        params: seen?.params ?? { moment_missed: true },
      }
    },
  }
}

/** While its service is frozen for a capture. */
const killInCapture = killServerAt('kill-in-capture', async (node) => {
  const frozen = await untilFrozen(node, CAPTURE_WAIT_MS)
  return frozen === null
    ? null
    : { note: `while its service (group ${frozen}) was frozen for a capture`, params: { in_capture: true } }
})

/** As it logs a snapshot taken: its publication and replication under way. */
const killInReplication = killServerAt('kill-in-replication', async (node) => {
  const taken = await nextRecord([node], (r) => r.event === 'snapshot_taken', CAPTURE_WAIT_MS)
  if (taken === null) return null
  const id = String(taken.record['id'])
  return {
    note: `as it took ${id} (${String(taken.record['delta_bytes'])} bytes to replicate)`,
    params: { snapshot: id },
  }
})

/** SIGKILL of the server, then of the node elected in its place as it starts its restore. */
const killInRestore: Nemesis = {
  name: 'kill-in-restore',
  async run(ctx, server) {
    const node = ctx.nodes[server]!
    const rest = ctx.nodes.filter((n) => n.index !== server)
    const elected = nextRecord(rest, (r) => r.event === 'elected', 60_000)
    const fault_t = Date.now()
    node.signal('SIGKILL')
    ctx.note(`SIGKILL n${server} (node and service)`)
    const heir = await elected
    const victims = [node]
    if (heir === null) ctx.note('no election within 60 s of the kill')
    else {
      heir.node.signal('SIGKILL')
      victims.push(heir.node)
      ctx.note(
        `SIGKILL n${heir.node.index} as it was elected and began restoring ${String(heir.record['snapshot'])}`,
      )
    }
    await ctx.sleep(ctx.hold_ms)
    await restart(ctx, victims)
    return {
      fault_t,
      heal_t: Date.now(),
      touched: ctx.nodes.map((n) => n.index),
      pure_partition: false,
      params: { heir: heir === null ? null : `n${heir.node.index}` },
    }
  },
}

/** The server isolated and healed; the first node to log `merge_started` is SIGKILLed at that moment. */
const killInMerge: Nemesis = {
  name: 'kill-in-merge',
  async run(ctx, server): Promise<FaultApplied> {
    const p = await partition(ctx, [server], {})
    // partition() has healed: a merge starts only now (the listener is in place before any log line is read).
    const merging = await nextRecord(ctx.nodes, (r) => r.event === 'merge_started', 30_000)
    const victims: LabNode[] = []
    if (merging === null) ctx.note('no merge started within 30 s of the heal')
    else {
      merging.node.signal('SIGKILL')
      victims.push(merging.node)
      ctx.note(`SIGKILL n${merging.node.index} as it started a merge`)
      await ctx.sleep(ctx.hold_ms / 2)
      await restart(ctx, victims)
    }
    return {
      fault_t: p.fault_t,
      heal_t: Date.now(),
      touched: ctx.nodes.map((n) => n.index),
      pure_partition: false,
      params: { killed: merging === null ? null : `n${merging.node.index}` },
    }
  },
}

export const PROCESS_NEMESES: Nemesis[] = [
  partFault('kill-service', 'service', 'SIGKILL'),
  partFault('stop-service', 'service', 'SIGSTOP'),
  partFault('kill-node', 'node', 'SIGKILL'),
  partFault('stop-node', 'node', 'SIGSTOP'),
  simultaneous(2),
  simultaneous(3),
  killInCapture,
  killInReplication,
  killInRestore,
  killInMerge,
]
