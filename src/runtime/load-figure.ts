import { statfs } from 'node:fs/promises'
import { availableParallelism, freemem, loadavg, totalmem } from 'node:os'

/** How often a node re-reads its load and, when the figure changed, tells the core (and so its peers). */
export const LOAD_REPORT_INTERVAL_MS = 2000

/** Figures are rounded to this step, so noise in the load average does not reorder the election. */
const LOAD_QUANTUM = 0.05

/** Free disk is reported in whole steps of this size, so each write does not change the figure. */
const ROOM_QUANTUM_BYTES = 1 << 20

export interface LoadSample {
  /** 1-minute load average over the cores: 1 = every core busy. */
  cpu_per_core: number
  /** Fraction of memory in use, 0..1. */
  memory_used: number
}

export function sampleLoad(): LoadSample {
  return {
    cpu_per_core: loadavg()[0]! / availableParallelism(),
    memory_used: 1 - freemem() / totalmem(),
  }
}

/**
 * The load a node reports for the `capacity` election (lower is elected first): the utilisation this
 * node would have with the service on it, per unit of the capacity its operator declares.
 *
 * - CPU and memory both count; the scarcer one decides (a node with idle cores and no free memory is
 *   not a good place to restore to). Free disk is reported apart (`roomBytes`): the core compares it
 *   with the snapshot's image, a bound rather than a weight.
 * - The `+ 1` is the service's own demand, one unit: an idle node's figure is then 1 / weight, so the
 *   declared weight (`election.capacity_weight`, e.g. 2 for a PC twice as strong) still orders idle
 *   nodes, where the measured part alone would tie at 0.
 * - Divided by the weight: measured load says how busy a PC is, not how strong; only its operator knows
 *   that a NAS and a workstation differ.
 */
export function loadFigure(sample: LoadSample, capacity_weight: number): number {
  if (!(capacity_weight > 0)) throw new Error(`capacity_weight must be > 0, got ${capacity_weight}`)
  const used = Math.max(0, sample.cpu_per_core, sample.memory_used)
  const figure = (used + 1) / capacity_weight
  return Math.round(figure / LOAD_QUANTUM) * LOAD_QUANTUM
}

/**
 * `capacity` election: free disk for the state on the filesystem of the data directory `dir` (what an
 * unprivileged process may use), less `reserve_bytes` that the operator keeps for everything else, in
 * whole MiB, never below 0. Null when the filesystem cannot be asked (the core then takes it as enough).
 */
export async function roomBytes(dir: string, reserve_bytes: number): Promise<number | null> {
  let free: number
  try {
    const fs = await statfs(dir)
    free = fs.bavail * fs.bsize
  } catch {
    return null
  }
  const room = Math.max(0, free - reserve_bytes)
  return Math.floor(room / ROOM_QUANTUM_BYTES) * ROOM_QUANTUM_BYTES
}
