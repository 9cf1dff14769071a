import type { Health, Role } from '../core/types.ts'
import type { Capacity, NodeStatus } from '../runtime/status.ts'
import { formatDuration } from './format.ts'
import type { UiState } from './model.ts'

/** One line of the nodes table, derived from the newest status and the UI's reachability record. */
export interface NodeRow {
  key: string
  name: string
  self: boolean
  priority: number
  role: Role
  term: number
  reachable: boolean
  /** "self", "up 12 s", "up ≥4.0 s" (already up when first seen), "down 3.1 s". */
  reach: string
  heard_ms: number | null
  suspicion: Suspicion
  snapshot: string | null
  /** Whether this node holds the server's newest snapshot (null: no server or it has none). */
  current: boolean | null
  health: Health
  /** `capacity` figures as the node reported them (absent: not reported). */
  capacity: Capacity
}

export type SuspicionLevel = 0 | 1 | 2 | 3 | 4
export interface Suspicion {
  level: SuspicionLevel
  label: string
}

/**
 * Thresholds on "last heard" (state messages every heartbeat, 200 ms by default; the overlay suspects a
 * silent peer after about 600 ms). NodeStatus carries no phi; when a `phi` field appears on a peer it is
 * shown instead.
 */
export const SUSPICION_AGE_MS = [450, 900, 2000] as const
/** The overlay's suspicion threshold (overlay/federation.ts). */
export const PHI_SUSPECT = 8

type Peer = NodeStatus['peers'][number] & { phi?: number | null }

export function suspicion(peer: Peer): Suspicion {
  if (!peer.reachable) return { level: 4, label: 'down' }
  if (typeof peer.phi === 'number') {
    const level: SuspicionLevel = peer.phi < 1 ? 0 : peer.phi < 3 ? 1 : peer.phi < PHI_SUSPECT ? 2 : 3
    return { level, label: `φ${peer.phi.toFixed(1)}` }
  }
  const age = peer.last_heard_ms_ago
  if (age < SUSPICION_AGE_MS[0]) return { level: 0, label: 'low' }
  if (age < SUSPICION_AGE_MS[1]) return { level: 1, label: 'late' }
  if (age < SUSPICION_AGE_MS[2]) return { level: 2, label: 'high' }
  return { level: 3, label: 'silent' }
}

/** The snapshot id the server holds newest: its own when this node serves, else its state message's. */
export function serverSnapshot(status: NodeStatus): string | null {
  if (status.node.server === status.node.key) return status.snapshot?.id ?? null
  return status.peers.find((p) => p.key === status.node.server)?.snapshot ?? null
}

export function serverName(status: NodeStatus): string | null {
  const key = status.node.server
  if (key === null) return null
  if (key === status.node.key) return status.node.name
  return status.peers.find((p) => p.key === key)?.name ?? key.slice(0, 8)
}

/** Server first, then by priority (highest first), then name: the order `sustain status` uses. */
export function nodeRows(state: UiState): NodeRow[] {
  const status = state.status
  if (status === null) return []
  const newest = serverSnapshot(status)
  const me = status.node
  const current = (id: string | null) => (newest === null ? null : id === newest)
  const self: NodeRow = {
    key: me.key,
    name: me.name,
    self: true,
    priority: me.priority,
    role: me.role,
    term: me.term,
    reachable: true,
    reach: 'self',
    heard_ms: null,
    suspicion: { level: 0, label: '-' },
    snapshot: status.snapshot?.id ?? null,
    current: current(status.snapshot?.id ?? null),
    health: me.health,
    capacity: { load: me.load, room_bytes: me.room_bytes, site: me.site },
  }
  const peers = status.peers.map((p): NodeRow => {
    const r = state.reach[p.key]
    const for_ms = r ? state.now_ms - r.since_ms : null
    const reach =
      for_ms === null
        ? p.reachable
          ? 'up'
          : 'down'
        : `${p.reachable ? 'up' : 'down'} ${r?.known ? '' : '≥'}${formatDuration(for_ms)}`
    return {
      key: p.key,
      name: p.name ?? p.key.slice(0, 8),
      self: false,
      priority: p.priority,
      role: p.role,
      term: p.term,
      reachable: p.reachable,
      reach,
      heard_ms: p.last_heard_ms_ago,
      suspicion: suspicion(p),
      snapshot: p.snapshot,
      current: current(p.snapshot),
      health: p.health,
      capacity: { load: p.load, room_bytes: p.room_bytes, site: p.site },
    }
  })
  return [self, ...peers].sort(
    (a, b) =>
      Number(b.role === 'server') - Number(a.role === 'server') ||
      b.priority - a.priority ||
      a.name.localeCompare(b.name),
  )
}
