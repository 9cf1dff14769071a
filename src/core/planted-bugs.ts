import type { ForkPoint } from './lineage.ts'
import { best, type Contender, compareContenders } from './ranking.ts'
import type { SnapshotRef, Strategy } from './types.ts'

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
  /**
   * Planned leave: a candidate elects on a detector's suspicion of a server in its hand-over (busy with
   * its final snapshot), so the leaver meets a second server and merges into it instead of handing over.
   */
  'suspects-leaver',
  /**
   * Planned leave: once the leaver went, a candidate elects at once although the leaver named a
   * successor that it has not reached yet (a rejoined node found late) but its peers follow.
   */
  'forgets-successor',
  /**
   * A joining node claims after 3 x join_wait_ms although a peer follows a server it has not reached
   * yet (one peer found late), making a second server.
   */
  'ignores-unreached-server',
  /**
   * Formation: a claimant ignores a refusal naming a node it never heard (a late admission), so it
   * serves beside that node (issue 24, joint start at load 30).
   */
  'ignores-unheard-better',
  /**
   * A claimant ignores refusals from a majority of its reachable peers that follow a server it cannot
   * reach (it suspected it falsely), so it serves beside that server.
   */
  'ignores-followed-server',
  /** `capacity`: a node without room for the snapshot's image is elected anyway (its restore would fail). */
  'elects-without-room',
] as const

/** Bugs that only exist under a merge policy; the planted-bug test runs them under it. */
export const PLANTED_BUG_POLICY: Partial<Record<PlantedBug, 'refuse-to-split'>> = {
  'no-support-gap': 'refuse-to-split',
}
/** Bugs that only exist under one election strategy; the planted-bug test runs them under it. */
export const PLANTED_BUG_STRATEGY: Partial<Record<PlantedBug, 'capacity'>> = {
  'elects-without-room': 'capacity',
}
/** Bugs that only exist with output commit on; the planted-bug test runs them with k = 1. */
export const PLANTED_BUG_OUTPUT_COMMIT: Partial<Record<PlantedBug, number>> = {
  'release-before-stored': 1,
  'merged-keeps-term': 1,
  'dead-fork-ignored': 1,
}
/** Bugs only a planned-leaves run shows (test/sim/planned-leaves.ts): no invariant of a chaos run breaks. */
export const PLANTED_BUG_PLANNED_LEAVES: ReadonlySet<PlantedBug> = new Set<PlantedBug>([
  'suspects-leaver',
  'forgets-successor',
  'ignores-unreached-server',
])
/** Bugs only the election-fault runs show (test/sim/election-faults.ts). */
export const PLANTED_BUG_ELECTION_FAULTS: ReadonlySet<PlantedBug> = new Set<PlantedBug>([
  'ignores-unheard-better',
  'ignores-followed-server',
])
export type PlantedBug = (typeof PLANTED_BUGS)[number]

/**
 * The one seam through which a planted bug changes the core: NodeCore asks here at each point a bug
 * touches, and `plantedSeam(undefined)` answers as the correct core. Nothing else in src/core reads
 * `config.planted_bug`.
 */
export interface BugSeam {
  /** The election's pick among the contenders (the best by the strategy). */
  pick(strategy: Strategy, contenders: Contender[]): Contender | null
  /** The term of a claim, given the highest term seen (one more). */
  claimTerm(max_term: number): number
  /** 1: restore the newest collectable snapshot; -1: the oldest. */
  restoreOrder: 1 | -1
  /** A server that meets a better server steps down and merges. */
  stepsDownOnHeal: boolean
  /** The fork point a merging loser sends, given the true one and its lineage head. */
  forkPoint(fork: ForkPoint | null, head: SnapshotRef | null): ForkPoint | null
  /** Output is released as soon as the server stored its own snapshot (no candidate yet). */
  releasesOnOwnStore: boolean
  /** A merge winner takes a new term when a loser's changes landed (`merged`). */
  handlesMerged: boolean
  /** Candidates merge dead forks into their server. */
  mergesDeadForks: boolean
  /** refuse-to-split: a change of support passes through the fence_ms gap. */
  supportGap: boolean
  /** A detector's suspicion of a server in its hand-over is not acted on (it is busy, not gone). */
  waitsForLeaver: boolean
  /** A candidate whose leaving server went waits for the successor it named. */
  waitsForSuccessor: boolean
  /** A candidate with no server waits while a peer follows a server it has not reached. */
  waitsForUnreachedServer: boolean
  /** Formation: a refusal naming a node the claimant cannot reach gives the claim up. */
  formationRefusals: boolean
  /** Refusals by a majority of reachable peers naming a node the claimant cannot reach give it up. */
  majorityRefusals: boolean
  /** `capacity`: a node without room for the snapshot to restore is neither elected nor claims. */
  checksRoom: boolean
}

export function plantedSeam(bug: PlantedBug | undefined): BugSeam {
  return {
    pick: (strategy, contenders) =>
      bug === 'lower-priority-wins'
        ? contenders.reduce<Contender | null>(
            (lo, c) => (lo === null || compareContenders(strategy, c, lo) < 0 ? c : lo),
            null,
          )
        : best(strategy, contenders),
    claimTerm: (max_term) => (bug === 'term-not-incremented' ? Math.max(max_term, 1) : max_term + 1),
    restoreOrder: bug === 'restore-older-snapshot' ? -1 : 1,
    stepsDownOnHeal: bug !== 'never-step-down-on-heal',
    forkPoint: (fork, head) =>
      bug === 'wrong-fork-point' && head ? { id: head.id, time_ms: head.time_ms } : fork,
    releasesOnOwnStore: bug === 'release-before-stored',
    handlesMerged: bug !== 'merged-keeps-term',
    mergesDeadForks: bug !== 'dead-fork-ignored' && bug !== 'merged-keeps-term',
    supportGap: bug !== 'no-support-gap',
    waitsForLeaver: bug !== 'suspects-leaver',
    waitsForSuccessor: bug !== 'forgets-successor',
    waitsForUnreachedServer: bug !== 'ignores-unreached-server',
    formationRefusals: bug !== 'ignores-unheard-better',
    majorityRefusals: bug !== 'ignores-followed-server',
    checksRoom: bug !== 'elects-without-room',
  }
}
