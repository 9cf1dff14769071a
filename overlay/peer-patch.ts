import assert from 'node:assert/strict'

/** Methods already replaced, per Peer class (hypercore's replicator has one; a second copy would be a second class). */
const replaced = new WeakMap<object, Set<PropertyKey>>()

/**
 * Replace method `name` of hypercore's internal replicator Peer class, given any of its instances (from a
 * core's 'peer-add'): once per class, however many cores and peers come by. `replace` gets the original.
 * A hypercore without the method fails here, loudly, naming the file whose patch needs a look.
 */
export function patchPeerMethod<P, K extends keyof P>(
  peer: object,
  name: K,
  source: string,
  replace: (original: P[K]) => P[K],
): void {
  const proto = Object.getPrototypeOf(peer) as P
  let names = replaced.get(proto as object)
  if (!names) {
    names = new Set()
    replaced.set(proto as object, names)
  }
  if (names.has(name)) return
  const original = proto[name]
  assert.equal(typeof original, 'function', `hypercore Peer has no ${String(name)}: re-check ${source}`)
  names.add(name)
  proto[name] = replace(original)
}
