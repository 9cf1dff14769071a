import { type CoreConfig, DEFAULT_CORE_CONFIG } from '../../src/core/config.ts'
import type { CoreEffect } from '../../src/core/io.ts'
import type { StateMessage } from '../../src/core/messages.ts'
import { NodeCore } from '../../src/core/node.ts'
import type { NodeId, Role, SnapshotRef } from '../../src/core/types.ts'

export const A: NodeId = 'a'.repeat(64)
export const B: NodeId = 'b'.repeat(64)
export const C: NodeId = 'c'.repeat(64)

export function makeNode(
  id: NodeId,
  priority: number,
  extra: Partial<CoreConfig> = {},
  held: SnapshotRef | null = null,
) {
  return new NodeCore({ config: { ...DEFAULT_CORE_CONFIG, id, priority, ...extra }, now_ms: 0, held })
}

export function state(role: Role, fields: Partial<StateMessage> = {}): StateMessage {
  return {
    type: 'state',
    term: 1,
    role,
    priority: 10,
    load: 0,
    server: null,
    snapshot: null,
    head: null,
    health: 'ok',
    eligible: true,
    ...fields,
  }
}

export function ref(writer: NodeId, term: number, seq: number, time_ms = term * 1000 + seq): SnapshotRef {
  return {
    id: `${writer}:${term}:${seq}`,
    writer,
    term,
    seq,
    time_ms,
    size_bytes: 100,
    lineage: [{ writer, term, seq, time_ms }],
  }
}

export function ofType<T extends CoreEffect['type']>(effects: CoreEffect[], type: T) {
  return effects.filter((e): e is Extract<CoreEffect, { type: T }> => e.type === type)
}
