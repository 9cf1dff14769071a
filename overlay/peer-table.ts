/**
 * The peer table: who is reachable now, who was and is watched until it returns, and who the current
 * server is (highest term among peers claiming the server role). Plain data; the Federation updates it.
 */

/**
 * `closed`: its control connection ended; `suspected`: silence (phi); `rejected`: dropped for a
 * violation; `gone`: evidence its process is gone (a lane ended and the redial was refused).
 */
export type PeerDownReason = 'closed' | 'suspected' | 'rejected' | 'gone'

export interface PeerEntry {
  key: string
  name: string
  priority: number
  role: string
  term: number
  /** Monotonic ms (performance.now) of the last frame from this peer. */
  last_heard_ms: number
  reachable: boolean
  /** Why it became unreachable; null while reachable. */
  down_reason: PeerDownReason | null
}

export interface PeerTableView {
  reachable: PeerEntry[]
  unreachable: PeerEntry[]
  /** Key of the reachable peer (or this node, as 'self') that claims the server role with the highest term. */
  server: string | null
}

export class PeerTable {
  private readonly entries = new Map<string, PeerEntry>()

  get(key: string): PeerEntry | undefined {
    return this.entries.get(key)
  }

  up(
    key: string,
    info: { name: string; priority: number; role: string; term: number },
    now_ms: number,
  ): PeerEntry {
    const entry: PeerEntry = { key, ...info, last_heard_ms: now_ms, reachable: true, down_reason: null }
    this.entries.set(key, entry)
    return entry
  }

  heard(key: string, now_ms: number, state?: { role: string; term: number }): void {
    const entry = this.entries.get(key)
    if (!entry) return
    entry.last_heard_ms = now_ms
    if (state) {
      entry.role = state.role
      entry.term = state.term
    }
  }

  /** Returns true if the peer was reachable (so the caller reports the transition once). */
  down(key: string, reason: PeerDownReason): boolean {
    const entry = this.entries.get(key)
    if (!entry?.reachable) return false
    entry.reachable = false
    entry.down_reason = reason
    return true
  }

  /** Mark a suspected peer reachable again after it was heard from. Returns true on the transition. */
  revive(key: string): boolean {
    const entry = this.entries.get(key)
    if (!entry || entry.reachable) return false
    entry.reachable = true
    entry.down_reason = null
    return true
  }

  reachableKeys(): string[] {
    return [...this.entries.values()].filter((e) => e.reachable).map((e) => e.key)
  }

  view(self?: { key: string; role: string; term: number }): PeerTableView {
    const all = [...this.entries.values()].map((e) => ({ ...e }))
    const reachable = all.filter((e) => e.reachable).sort((a, b) => a.key.localeCompare(b.key))
    const unreachable = all.filter((e) => !e.reachable).sort((a, b) => a.key.localeCompare(b.key))
    const claims = reachable.map((e) => ({ key: e.key, role: e.role, term: e.term }))
    if (self) claims.push(self)
    const servers = claims.filter((c) => c.role === 'server').sort((a, b) => b.term - a.term)
    return { reachable, unreachable, server: servers[0]?.key ?? null }
  }
}
