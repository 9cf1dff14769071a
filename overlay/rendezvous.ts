import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'

/**
 * Rendezvous (highest-random-weight) placement: the `r` nodes with the highest hash(node, item) hold
 * the item. Every node computes the same answer from the same member list, and a member joining or
 * leaving moves only the items it wins or held.
 */
export function rendezvousHolders(item: string, nodes: readonly string[], r: number): string[] {
  assert(Number.isInteger(r) && r >= 1, 'replication factor must be a positive integer')
  return nodes
    .map((node) => ({
      node,
      weight: createHash('sha256').update(node).update('\0').update(item).digest('hex'),
    }))
    .sort((a, b) => (a.weight < b.weight ? 1 : a.weight > b.weight ? -1 : 0))
    .slice(0, r)
    .map((x) => x.node)
}
