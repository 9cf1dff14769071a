/** Invariant check. Core invariants are cheap; they stay on in production (TigerBeetle style). */
export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new Error(`invariant violated: ${message}`)
}
