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
] as const
export type PlantedBug = (typeof PLANTED_BUGS)[number]
