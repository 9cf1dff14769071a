import type { CoreConfig } from './config.ts'
import type { CoreEffect, TimelineName } from './io.ts'
import type { NodeId, Role } from './types.ts'

/** What every part of NodeCore in a file of its own (dead-fork.ts, merge.ts, handover.ts) reads and adds. */
export interface CoreHost {
  readonly id: NodeId
  readonly config: CoreConfig
  now_ms(): number
  timeline(name: TimelineName, fields: Record<string, unknown>): void
  push(effect: CoreEffect): void
}

/** A part that also moves its node between roles (the heal's loser side, the hand-over). */
export interface RoleHost extends CoreHost {
  setServer(server: NodeId | null): void
  setRole(role: Role): void
  /** The service this node ran is no longer its own: no head, health unknown. */
  dropHead(): void
}
