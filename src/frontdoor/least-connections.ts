import type { Route } from './route.ts'

/** The key a route's connections are counted under: this node's service, or a member's key. */
export function routeKey(route: NonNullable<Route>): string {
  return route.kind === 'local' ? 'local' : route.key
}

/**
 * Least connections among a Type0 service's replicas (runtime/replica-runner.ts), as one front door
 * sees them: the connections it has open to each (the local replica counted like any other). Ties go
 * round in turn, so one client's connections made one after another spread too, not only concurrent ones.
 */
export class LeastConnections {
  private readonly open = new Map<string, number>()
  private turn = 0

  /** The route with the fewest open connections of `routes` (null when there is none). */
  pick(routes: readonly NonNullable<Route>[]): NonNullable<Route> | null {
    if (routes.length === 0) return null
    let least = Number.POSITIVE_INFINITY
    let tied: NonNullable<Route>[] = []
    for (const route of routes) {
      const n = this.count(routeKey(route))
      if (n < least) {
        least = n
        tied = [route]
      } else if (n === least) tied.push(route)
    }
    const chosen = tied[this.turn % tied.length]!
    this.turn = (this.turn + 1) % 1_000_000
    return chosen
  }

  count(key: string): number {
    return this.open.get(key) ?? 0
  }

  opened(key: string): void {
    this.open.set(key, this.count(key) + 1)
  }

  closed(key: string): void {
    const n = this.count(key) - 1
    if (n < 0) throw new Error(`least-connections: more closes than opens for ${key}`)
    if (n === 0) this.open.delete(key)
    else this.open.set(key, n)
  }

  /** Open connections per route key (status). */
  snapshot(): Record<string, number> {
    return Object.fromEntries(this.open)
  }
}
