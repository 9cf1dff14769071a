import { getPriority, setPriority } from 'node:os'

/** How much nicer than the node the capture's thread runs while the service is frozen (negative: less nice). */
const PAUSE_NICE_BOOST = -10

/**
 * Raises the calling thread's scheduling priority while the service is frozen: the stat scan and the
 * small copies of a pause are the service's whole downtime, and on a busy machine waiting for a core
 * dominated them. Needs CAP_SYS_NICE (root); without it nothing changes. Returns the nice value in
 * force and the undo.
 */
export function boostWhileFrozen(): { nice: number; undo: () => void } {
  let before: number
  try {
    before = getPriority(0)
    setPriority(0, Math.max(-20, before + PAUSE_NICE_BOOST))
  } catch {
    return { nice: getPriority(0), undo: () => {} }
  }
  return {
    nice: getPriority(0),
    undo: () => {
      try {
        setPriority(0, before) // back to a nicer value is always allowed
      } catch {
        // the thread's priority is only a matter of speed
      }
    },
  }
}
