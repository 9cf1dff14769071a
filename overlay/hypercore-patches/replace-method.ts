import { PatchError } from './check.ts'

/**
 * Replace method `name` of `proto` (a class's prototype: hypercore's replicator Peer, SessionState,
 * SecretStream) with `replace(original)`. Returns the undo: the original goes back. A second replacement of
 * the same method is refused: two patches over one method would depend on their order.
 */
export function replaceMethod<P extends object, K extends keyof P>(
  patch: string,
  proto: P,
  name: K,
  replace: (original: P[K]) => P[K],
): () => void {
  const original = proto[name]
  if (typeof original !== 'function') throw new PatchError(patch, `${String(name)} is not a method`)
  if (replacedBy.get(original as object) !== undefined) {
    throw new PatchError(
      patch,
      `${String(name)} is already replaced by ${replacedBy.get(original as object)}`,
    )
  }
  const replacement = replace(original)
  replacedBy.set(replacement as object, patch)
  proto[name] = replacement
  return () => {
    if (proto[name] === replacement) proto[name] = original
    replacedBy.delete(replacement as object)
  }
}

/** Which patch installed a replacement method. */
const replacedBy = new WeakMap<object, string>()
