import type { PatchedPackage } from './check.ts'
import type { Internals } from './internals.ts'

/** One change to a dependency's internals, written for one exact version of it. */
export interface HypercorePatch {
  /** Also the file name in this folder; error messages name it. */
  readonly name: string
  readonly pkg: PatchedPackage
  /** The exact version the patch was written and tested against. */
  readonly written_for: string
  /** Throws a PatchError unless every internal the patch reads or replaces is there, on live instances. */
  check(internals: Internals): void
  /** Replace what the patch replaces (after `check`). */
  install(internals: Internals): void
  /** Put the originals back: tests show the fault a patch fixes comes back without it. */
  uninstall(): void
}

/** Peer patches replace methods of this class (hypercore keeps it private: reached through an instance). */
export function peerClass(internals: Internals): object {
  return Object.getPrototypeOf(internals.peer) as object
}

/** A patch's undo, kept while it is installed. */
export class Installed {
  private undo: (() => void)[] = []

  get active(): boolean {
    return this.undo.length > 0
  }

  add(undo: () => void): void {
    this.undo.push(undo)
  }

  revert(): void {
    for (const undo of this.undo.splice(0).reverse()) undo()
  }
}
