import assert from 'node:assert/strict'
import type { SnapshotInfo } from './store.ts'

/**
 * The snapshots retention keeps: everything down to the `retain_newest`-th newest restorable state.
 * A state is one complete snapshot. A derived base holds the same image as the snapshot it was derived
 * from, so the pair counts once; an incomplete snapshot (a rebase a crash interrupted) restores nothing
 * and does not count. Counting either as a snapshot let gc drop a snapshot already reported done while
 * fewer than `retain_newest` restorable states were newer than it.
 */
export async function retainedSnapshots(
  newestFirst: readonly SnapshotInfo[],
  retain_newest: number,
  isComplete: (id: string) => Promise<boolean>,
): Promise<string[]> {
  assert(retain_newest >= 1, 'retain_newest must be >= 1')
  const keep: string[] = []
  const counted = new Set<string>()
  let states = 0
  for (const info of newestFirst) {
    const sameAsCounted = counted.has(info.id)
    if (states >= retain_newest && !sameAsCounted) break
    keep.push(info.id)
    if (sameAsCounted || !(await isComplete(info.id))) continue
    states++
    counted.add(info.id)
    if (info.derived_from) counted.add(info.derived_from)
  }
  return keep
}
