/**
 * Service types, Table 1 of the original design (../shared/seeds/002, DESIGN.md "Service types").
 * Two questions decide a type: does the service need all of its data to answer (or does it work on the
 * part one side of a split holds), and may its answers be late (or must it answer at once)?
 *
 *             partial data ok         needs all data
 *   delay ok  Type1: both sides serve  Type3: only the side with the data serves; the other holds
 *   at once   Type2: Type1 + told      Cannot: no federation of ordinary PCs can promise this
 *   no state  Type0: copies are harmless; several may serve at once
 *
 * Pure: the table and the decisions that follow from it; the runtime and the front door act on them.
 */
export const SERVICE_TYPES = ['type0', 'type1', 'type2', 'type3', 'cannot'] as const
export type ServiceType = (typeof SERVICE_TYPES)[number]

/** What a type means while the federation is split (the rows of Table 1, as behaviour). */
export interface TypePolicy {
  /** Both sides of a split may run a server (and merge at the heal). */
  serve_on_both_sides: boolean
  /** The service is told at once of a split and a heal (helper `info`). */
  told_of_split: boolean
  /** Several servers at once are allowed (no state to diverge): nothing is ever merged. */
  replicas_allowed: boolean
}

const POLICY: Record<Exclude<ServiceType, 'cannot'>, TypePolicy> = {
  type0: { serve_on_both_sides: true, told_of_split: false, replicas_allowed: true },
  type1: { serve_on_both_sides: true, told_of_split: false, replicas_allowed: false },
  type2: { serve_on_both_sides: true, told_of_split: true, replicas_allowed: false },
  type3: { serve_on_both_sides: false, told_of_split: true, replicas_allowed: false },
}

export function typePolicy(type: Exclude<ServiceType, 'cannot'>): TypePolicy {
  return POLICY[type]
}

/**
 * The heal policy a type imposes on the core. Type3 needs all of its data: a split side that lacks it
 * must not serve. Which side has the data? Sustain's data is the one server's state; after a split the
 * side that may keep (or elect) the server is the one with a strict majority of the members: that is
 * `refuse-to-split` (config.ts), so Type3 is served only there. The minority side has no server: its front
 * door holds new clients (up to front_door.max_held / hold_ms) until the heal. As only one side ever
 * serves, there is nothing to merge: the heal never joins two divergent states (the data is gathered by
 * construction). Type0/1/2 keep the configured policy (`helper` by default: both sides serve, merge on heal).
 */
export function mergePolicyFor<P extends string>(type: ServiceType, configured: P): P | 'refuse-to-split' {
  return type === 'type3' ? 'refuse-to-split' : configured
}

/**
 * Why a service of this type cannot run on a federation, and what type would fit; null when it can.
 * The text is shown to a person at `sustain join` / `config check`, so it names the way out.
 */
export function refusal(type: ServiceType, name: string): string | null {
  if (type !== 'cannot') return null
  return (
    `service ${name} declares type: cannot (needs all of its data and must answer at once), which a ` +
    'federation of ordinary PCs cannot provide: while the network is split, one side lacks the data and ' +
    'no side can both have it all and answer without waiting for the other. ' +
    'Pick the type that fits what the service can give up: type3 if its answers may wait until the data ' +
    'is gathered (only the side with the data serves, the other holds clients); type2 if it can answer ' +
    'from the part of the data one side holds and is told of the split (helper info) to refuse the rest; ' +
    'type1 if partial data and late answers are both fine; type0 if it keeps no state at all'
  )
}
