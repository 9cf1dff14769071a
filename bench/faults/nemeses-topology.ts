/**
 * Partitions where each node sees a majority, but not the same one (issue 20: "majority ring" and
 * "bridge"): the cases where a quorum rule alone does not decide who serves.
 */
import { cut, healAll, type Nemesis, type NemesisContext } from './nemeses.ts'

type Pair = [number, number]

const name = (i: number) => `n${i}`

/** Cuts every pair in `pairs` (both ways), holds, heals; `touched`: nodes cut from the server. */
async function cutPairs(ctx: NemesisContext, server: number, pairs: Pair[], what: string) {
  const fault_t = Date.now()
  for (const [a, b] of pairs) await cut(ctx, a, b)
  ctx.note(`${what}; cut: ${pairs.map(([a, b]) => `${name(a)}x${name(b)}`).join(' ')}`)
  await ctx.sleep(ctx.hold_ms)
  await healAll(ctx)
  const heal_t = Date.now()
  ctx.note('healed: every packet filter removed')
  const touched = new Set<number>()
  for (const [a, b] of pairs) {
    if (a === server) touched.add(b)
    if (b === server) touched.add(a)
  }
  return { fault_t, heal_t, touched: [...touched], pure_partition: true }
}

/**
 * The nodes in a seeded ring order; each keeps its links to the k nearest on either side, with k the
 * least that lets every node see a majority (itself and 2k others). With 3 nodes every ring is complete:
 * one link is cut instead (two nodes each see a different majority through the third).
 */
export function ringCuts(order: number[]): Pair[] {
  const n = order.length
  const majority = Math.floor(n / 2) + 1
  const k = Math.ceil((majority - 1) / 2)
  if (2 * k >= n - 1) return [[order[0]!, order[1]!]]
  const pairs: Pair[] = []
  for (let i = 0; i < n; i++)
    for (let j = i + 1; j < n; j++) {
      const distance = Math.min(j - i, n - (j - i))
      if (distance > k) pairs.push([order[i]!, order[j]!])
    }
  return pairs
}

export const majorityRing: Nemesis = {
  name: 'partition-ring',
  async run(ctx, server) {
    const order = ctx.rng.shuffle(ctx.nodes.map((n) => n.index))
    const pairs = ringCuts(order)
    const p = await cutPairs(ctx, server, pairs, `majority ring ${order.map(name).join('-')}`)
    return { ...p, params: { ring: order.map(name) } }
  },
}

/**
 * One node (the server for half the seeds) sees both halves; the halves do not see each other. Each
 * half with the bridge is a majority.
 */
export const bridge: Nemesis = {
  name: 'partition-bridge',
  async run(ctx, server) {
    const all = ctx.nodes.map((n) => n.index)
    const middle = ctx.rng.chance(0.5) ? server : ctx.rng.pick(all.filter((i) => i !== server))
    const rest = ctx.rng.shuffle(all.filter((i) => i !== middle))
    const left = rest.slice(0, Math.floor(rest.length / 2))
    const right = rest.slice(left.length)
    const pairs: Pair[] = left.flatMap((a) => right.map((b): Pair => [a, b]))
    const what = `bridge ${name(middle)} between [${left.map(name).join(' ')}] and [${right.map(name).join(' ')}]`
    const p = await cutPairs(ctx, server, pairs, what)
    return { ...p, params: { bridge: name(middle), left: left.map(name), right: right.map(name) } }
  },
}
