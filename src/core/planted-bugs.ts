/**
 * Known bugs that tests plant in the core (or in the simulator's model of the overlay) to prove the
 * simulator's checker is not vacuous.
 * Never set outside tests: the switch lives in CoreConfig.planted_bug and defaults to none.
 */
export const PLANTED_BUGS = [
  'lower-priority-wins',
  'term-not-incremented',
  'restore-older-snapshot',
  'never-step-down-on-heal',
  'wrong-fork-point',
  /** refuse-to-split: support moves to another node at once, without the fence_ms gap. */
  'no-support-gap',
  /**
   * Not in the core: the simulator's model of the overlay acts on a lane that ended without the
   * confirming redial (overlay/federation.ts confirmGone), so a blip on a live server's lane kills it.
   */
  'gone-without-confirmation',
  /** Output commit: output is released as soon as the server stored its snapshot, before any candidate did. */
  'release-before-stored',
  /**
   * Partition heal: the merge winner keeps its lower term after a loser's changes landed (no `merged`
   * handling), so the loser's pre-merge snapshot outranks the merged state; a failover loses content.
   * As in the core before that fix, dead forks are not merged either (that merge would repair the loss).
   */
  'merged-keeps-term',
  /** Dead fork: candidates never merge a snapshot whose lineage died before a heal merged it. */
  'dead-fork-ignored',
] as const

/** Bugs that only exist under a merge policy; the planted-bug test runs them under it. */
export const PLANTED_BUG_POLICY: Partial<Record<PlantedBug, 'refuse-to-split'>> = {
  'no-support-gap': 'refuse-to-split',
}
/** Bugs that only exist with output commit on; the planted-bug test runs them with k = 1. */
export const PLANTED_BUG_OUTPUT_COMMIT: Partial<Record<PlantedBug, number>> = {
  'release-before-stored': 1,
  'merged-keeps-term': 1,
  'dead-fork-ignored': 1,
}
export type PlantedBug = (typeof PLANTED_BUGS)[number]
