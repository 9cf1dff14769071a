import type { Prng } from './prng.ts'

export type PartitionKind = 'halves' | 'isolate' | 'ring' | 'bridge'

/**
 * Simulated network between node indices: cut links (symmetric), per-direction loss, latency with
 * jitter. Partitions may be non-transitive (ring, bridge): then "connected component" is not a clique,
 * and the checker waits for a heal before it asserts anything about components.
 */
export class SimNetwork {
  private readonly cut = new Set<string>()
  private readonly loss = new Map<string, number>()
  readonly base_latency_ms: number[][]

  constructor(
    readonly size: number,
    rng: Prng,
  ) {
    this.base_latency_ms = []
    for (let a = 0; a < size; a++) {
      const row: number[] = []
      for (let b = 0; b < size; b++) row.push(a === b ? 0 : rng.int(1, 30))
      this.base_latency_ms.push(row)
    }
  }

  private static key(a: number, b: number): string {
    return a < b ? `${a}-${b}` : `${b}-${a}`
  }

  linked(a: number, b: number): boolean {
    return a !== b && !this.cut.has(SimNetwork.key(a, b))
  }

  /** Probability that a message from `a` to `b` is dropped. */
  lossRate(a: number, b: number): number {
    return this.loss.get(`${a}>${b}`) ?? 0
  }

  latency(a: number, b: number, rng: Prng): number {
    const base = this.base_latency_ms[a]![b]!
    return base + rng.int(0, Math.ceil(base / 2) + 5)
  }

  hasLoss(): boolean {
    return this.loss.size > 0
  }

  isPartitioned(): boolean {
    return this.cut.size > 0
  }

  /** One link cut (both ways): two nodes that have not found each other yet, all others linked. */
  cutLink(a: number, b: number): void {
    this.cut.add(SimNetwork.key(a, b))
  }

  healLink(a: number, b: number): void {
    this.cut.delete(SimNetwork.key(a, b))
  }

  /** Messages from `from` to `to` dropped (or delivered again): a one-way fault, the other way works. */
  blockOneWay(from: number, to: number, blocked: boolean): void {
    if (blocked) this.loss.set(`${from}>${to}`, 1)
    else this.loss.delete(`${from}>${to}`)
  }

  healAll(): void {
    this.cut.clear()
    this.loss.clear()
  }

  healLoss(): void {
    this.loss.clear()
  }

  partition(kind: PartitionKind, rng: Prng): string {
    this.cut.clear()
    const nodes = rng.shuffle([...Array(this.size).keys()])
    const cutAll = (left: number[], right: number[]) => {
      for (const a of left) for (const b of right) this.cut.add(SimNetwork.key(a, b))
    }
    switch (kind) {
      case 'halves': {
        const k = rng.int(1, this.size - 1)
        cutAll(nodes.slice(0, k), nodes.slice(k))
        return `halves ${nodes.slice(0, k).join(',')} | ${nodes.slice(k).join(',')}`
      }
      case 'isolate':
        cutAll([nodes[0]!], nodes.slice(1))
        return `isolate ${nodes[0]}`
      case 'ring': {
        // Each node reaches the nodes within floor(n/2)-1 steps on a ring: a majority, never everyone.
        const reach = Math.max(1, Math.floor(this.size / 2) - 1)
        for (let i = 0; i < this.size; i++) {
          for (let j = i + 1; j < this.size; j++) {
            const d = Math.min(j - i, this.size - (j - i))
            if (d > reach) this.cut.add(SimNetwork.key(nodes[i]!, nodes[j]!))
          }
        }
        return `ring reach ${reach} order ${nodes.join(',')}`
      }
      case 'bridge': {
        const bridge = nodes[0]!
        const k = rng.int(1, this.size - 2)
        cutAll(nodes.slice(1, 1 + k), nodes.slice(1 + k))
        return `bridge ${bridge} between ${nodes.slice(1, 1 + k).join(',')} | ${nodes.slice(1 + k).join(',')}`
      }
    }
  }

  /** One-way (or two-way) loss on a random set of links. */
  lossy(rng: Prng, rate: number, one_way: boolean): string {
    this.loss.clear()
    const links = rng.int(1, this.size)
    for (let i = 0; i < links; i++) {
      const a = rng.int(0, this.size - 1)
      let b = rng.int(0, this.size - 2)
      if (b >= a) b += 1
      this.loss.set(`${a}>${b}`, rate)
      if (!one_way) this.loss.set(`${b}>${a}`, rate)
    }
    return `${one_way ? 'one-way ' : ''}loss ${rate} on ${links} links`
  }

  /** Components of the live nodes under the current cuts; `cliques` says whether each is fully linked. */
  components(alive: boolean[]): { groups: number[][]; cliques: boolean } {
    const seen = new Array<boolean>(this.size).fill(false)
    const groups: number[][] = []
    let cliques = true
    for (let start = 0; start < this.size; start++) {
      if (!alive[start] || seen[start]) continue
      const group: number[] = []
      const stack = [start]
      seen[start] = true
      while (stack.length > 0) {
        const a = stack.pop()!
        group.push(a)
        for (let b = 0; b < this.size; b++) {
          if (!seen[b] && alive[b] && this.linked(a, b)) {
            seen[b] = true
            stack.push(b)
          }
        }
      }
      for (const a of group) for (const b of group) if (a !== b && !this.linked(a, b)) cliques = false
      groups.push(group.sort((x, y) => x - y))
    }
    return { groups, cliques }
  }
}
