import type { Role } from '../../src/core/types.ts'
import type { NodeNotice } from '../../src/runtime/node.ts'
import type { NodeStatus } from '../../src/runtime/status.ts'
import type { UiInput } from '../../src/tui/model.ts'

/**
 * A recorded watch stream of node-1 (priority 20) in a federation of three, with the times the UI
 * received each line: node-0 (priority 30) serves; node-0 dies, node-1 detects, is elected, restores
 * and serves at term 2; node-0 comes back serving term 1 (a partition heal), node-1 merges into it.
 */
export const KEYS = {
  n0: 'a0'.repeat(32),
  n1: 'b1'.repeat(32),
  n2: 'c2'.repeat(32),
}

export const snap = (writer: string, term: number, seq: number) => `${writer}:${term}:${seq}`

interface PeerSpec {
  key: string
  name: string
  priority: number
  role: Role
  term: number
  reachable?: boolean
  heard?: number
  snapshot?: string | null
  health?: NodeStatus['peers'][number]['health']
}

export function status(
  self: {
    role: Role
    term: number
    server: string | null
    snapshot: string | null
    health?: 'ok' | 'unknown'
    recovery?: Partial<NodeStatus['recovery_point']>
  },
  peers: PeerSpec[],
): NodeStatus {
  return {
    node: {
      key: KEYS.n1,
      name: 'node-1',
      priority: 20,
      role: self.role,
      term: self.term,
      server: self.server,
      health: self.health ?? 'unknown',
      uptime_ms: 60_000,
      service_port: 2601,
    },
    peers: peers.map((p) => ({
      key: p.key,
      name: p.name,
      priority: p.priority,
      role: p.role,
      term: p.term,
      reachable: p.reachable ?? true,
      last_heard_ms_ago: p.heard ?? 120,
      phi: null,
      data: (p.reachable ?? true) ? ('lane' as const) : null,
      snapshot: p.snapshot ?? null,
      health: p.health ?? 'unknown',
    })),
    snapshot:
      self.snapshot === null ? null : { id: self.snapshot, age_ms: null, size_bytes: 48_128, held: 3 },
    replicating: [],
    recovery_point: {
      id: null,
      time_ms: null,
      age_ms: null,
      holders: 0,
      limit_ms: 15_000,
      stuck: false,
      ...self.recovery,
    },
    snapshot_failures: { consecutive: 0, last_reason: null, last_ms: null },
    output_commit: { k: null },
  }
}

const n0 = (over: Partial<PeerSpec> = {}): PeerSpec => ({
  key: KEYS.n0,
  name: 'node-0',
  priority: 30,
  role: 'server',
  term: 1,
  snapshot: snap(KEYS.n0, 1, 5),
  health: 'ok',
  ...over,
})
const n2 = (over: Partial<PeerSpec> = {}): PeerSpec => ({
  key: KEYS.n2,
  name: 'node-2',
  priority: 10,
  role: 'candidate',
  term: 1,
  snapshot: snap(KEYS.n0, 1, 5),
  ...over,
})

const timeline = (name: string, fields: Record<string, unknown>, role: Role, term: number): UiInput => ({
  type: 'notice',
  notice: { kind: 'timeline', name, fields, role, term } satisfies NodeNotice,
})
const progress = (what: 'restore' | 'replicate', id: string, done: number, total: number): UiInput => ({
  type: 'notice',
  notice: { kind: 'progress', what, id, bytes_done: done, bytes_total: total },
})

export const T0 = 1_700_000_000_000

/** [ms after T0, input]. Named marks let tests stop the replay at a stage. */
export const STREAM: Array<[number, UiInput]> = [
  [0, { type: 'connected' }],
  [
    10,
    {
      type: 'status',
      status: status({ role: 'candidate', term: 1, server: KEYS.n0, snapshot: snap(KEYS.n0, 1, 5) }, [
        n0(),
        n2(),
      ]),
    },
  ],
  [300, progress('replicate', snap(KEYS.n0, 1, 6), 0, 1_048_576)],
  [800, progress('replicate', snap(KEYS.n0, 1, 6), 524_288, 1_048_576)],
  [1300, progress('replicate', snap(KEYS.n0, 1, 6), 1_048_576, 1_048_576)],
  [
    1310,
    {
      type: 'status',
      status: status({ role: 'candidate', term: 1, server: KEYS.n0, snapshot: snap(KEYS.n0, 1, 6) }, [
        n0({ snapshot: snap(KEYS.n0, 1, 6) }),
        n2(),
      ]),
    },
  ],
  // node-0 is killed at about T0+2000: it goes silent, then is suspected.
  [
    2500,
    {
      type: 'status',
      status: status({ role: 'candidate', term: 1, server: KEYS.n0, snapshot: snap(KEYS.n0, 1, 6) }, [
        n0({ snapshot: snap(KEYS.n0, 1, 6), heard: 500 }),
        n2(),
      ]),
    },
  ],
  [2600, timeline('server_suspected', { server: KEYS.n0, reason: 'suspected' }, 'candidate', 1)],
  [2601, timeline('role_changed', { from: 'candidate', to: 'electing' }, 'electing', 1)],
  [
    2700,
    {
      type: 'status',
      status: status({ role: 'electing', term: 1, server: null, snapshot: snap(KEYS.n0, 1, 6) }, [
        n0({ snapshot: snap(KEYS.n0, 1, 6), reachable: false, heard: 700 }),
        n2({ role: 'electing' }),
      ]),
    },
  ],
  [2810, timeline('elected', { strategy: 'static', snapshot: snap(KEYS.n0, 1, 6) }, 'restoring', 2)],
  [2811, timeline('role_changed', { from: 'electing', to: 'restoring' }, 'restoring', 2)],
  [2900, progress('restore', snap(KEYS.n0, 1, 6), 262_144, 1_048_576)],
  [
    3000,
    {
      type: 'status',
      status: status({ role: 'restoring', term: 2, server: KEYS.n1, snapshot: snap(KEYS.n0, 1, 6) }, [
        n0({ snapshot: snap(KEYS.n0, 1, 6), reachable: false, heard: 1000 }),
        n2(),
      ]),
    },
  ],
  [3100, progress('restore', snap(KEYS.n0, 1, 6), 1_048_576, 1_048_576)],
  [
    3150,
    timeline('restored', { snapshot: snap(KEYS.n0, 1, 6), snapshot_time_ms: T0 + 1200 }, 'restoring', 2),
  ],
  [3151, timeline('role_changed', { from: 'restoring', to: 'server' }, 'server', 2)],
  [3400, timeline('service_answering', {}, 'server', 2)],
  [
    3500,
    {
      type: 'status',
      status: status(
        { role: 'server', term: 2, server: KEYS.n1, snapshot: snap(KEYS.n1, 2, 1), health: 'ok' },
        [
          n0({ snapshot: snap(KEYS.n0, 1, 6), reachable: false, heard: 1500 }),
          n2({ snapshot: snap(KEYS.n1, 2, 1) }),
        ],
      ),
    },
  ],
  // node-0 returns, still serving term 1: the heal rule (priority) makes node-1 merge into it.
  [
    9000,
    {
      type: 'status',
      status: status(
        { role: 'server', term: 2, server: KEYS.n1, snapshot: snap(KEYS.n1, 2, 4), health: 'ok' },
        [n0({ snapshot: snap(KEYS.n0, 1, 6) }), n2({ snapshot: snap(KEYS.n1, 2, 4) })],
      ),
    },
  ],
  [9050, timeline('role_changed', { from: 'server', to: 'merging' }, 'merging', 2)],
  [9051, timeline('merge_started', { winner: KEYS.n0, fork: snap(KEYS.n0, 1, 6), attempt: 1 }, 'merging', 2)],
  [9900, timeline('merge_finished', { winner: KEYS.n0, attempts: 1 }, 'merging', 2)],
  [9901, timeline('role_changed', { from: 'merging', to: 'candidate' }, 'candidate', 2)],
  [
    10_000,
    {
      type: 'status',
      status: status({ role: 'candidate', term: 2, server: KEYS.n0, snapshot: snap(KEYS.n1, 2, 4) }, [
        n0({ snapshot: snap(KEYS.n0, 1, 7) }),
        n2({ snapshot: snap(KEYS.n1, 2, 4) }),
      ]),
    },
  ],
]

export const MARKS = {
  steady: 1310,
  replicating: 800,
  suspected: 2700,
  restoring: 3000,
  served: 3500,
  healed: 10_000,
}
