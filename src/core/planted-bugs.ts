/**
 * Known bugs that tests plant in the core to prove the simulator's checker is not vacuous.
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
] as const

/** Bugs that only exist under a merge policy; the planted-bug test runs them under it. */
export const PLANTED_BUG_POLICY: Partial<Record<PlantedBug, 'refuse-to-split'>> = {
  'no-support-gap': 'refuse-to-split',
}
export type PlantedBug = (typeof PLANTED_BUGS)[number]
