/**
 * Every change this project makes to hypercore's and secret-stream's internals, installed by one explicit
 * call at start-up (`installHypercorePatches`, from Federation.start). Each patch names the exact package
 * version it was written for and checks, on live instances, every method and field it reads or replaces:
 * a different version or a renamed internal stops the start with a message naming the patch, instead of
 * a fault coming back silently.
 */
import { checkVersion, installedVersion, type PatchedPackage } from './check.ts'
import { type Internals, probeInternals } from './internals.ts'
import { keepTreeNodes } from './keep-tree-nodes.ts'
import { laneWindow } from './lane-window.ts'
import type { HypercorePatch } from './patch.ts'
import { secretStreamFrames } from './secret-stream-frames.ts'
import { serveCache } from './serve-cache.ts'
import { upgradeSync } from './upgrade-sync.ts'
import { writerFirst } from './writer-first.ts'

export { PatchError } from './check.ts'
export { LANE_INFLIGHT_BLOCKS } from './lane-window.ts'
export { ServedBlocks } from './serve-cache.ts'
export { WriterFirst, type WriterFirstOptions } from './writer-first.ts'

export const PATCHES: readonly HypercorePatch[] = [
  keepTreeNodes,
  upgradeSync,
  serveCache,
  laneWindow,
  secretStreamFrames,
  writerFirst,
]

/** Fails, naming the first patch, unless every patched package is at the version its patch was written for. */
export function checkVersions(version: (pkg: PatchedPackage) => string = installedVersion): void {
  for (const patch of PATCHES) checkVersion(patch.name, patch.pkg, patch.written_for, version(patch.pkg))
}

let installing: Promise<void> | null = null
/** The instances the patches were checked on (their classes are what was patched); null: not installed. */
let installedOn: Internals | null = null

/**
 * Check and install every patch (once per process; later calls wait for the first). Versions are checked
 * before anything is touched; then every internal, on a probe pair of real cores; then the patches go in.
 */
export function installHypercorePatches(
  version: (pkg: PatchedPackage) => string = installedVersion,
): Promise<void> {
  installing ??= (async () => {
    checkVersions(version)
    const probe = await probeInternals()
    try {
      for (const patch of PATCHES) patch.check(probe.internals)
      for (const patch of PATCHES) patch.install(probe.internals)
    } finally {
      await probe.close()
    }
    installedOn = probe.internals
  })().catch((error) => {
    installing = null
    throw error
  })
  return installing
}

/** For the overlay store: opening one without the patches would bring their faults back. */
export function assertHypercorePatchesInstalled(): void {
  if (installedOn === null)
    throw new Error('hypercore patches not installed: call installHypercorePatches() at start-up')
}

/** For tests: run `work` with one patch taken out, then put it back (the fault it fixes should show). */
export async function withoutPatch<T>(patch: HypercorePatch, work: () => Promise<T>): Promise<T> {
  const on = installedOn
  if (on === null) throw new Error('withoutPatch: install the patches first')
  patch.uninstall()
  try {
    return await work()
  } finally {
    patch.install(on)
  }
}
