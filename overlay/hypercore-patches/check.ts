import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'

/** A patch found something other than what it was written for: the process must not start with it. */
export class PatchError extends Error {
  constructor(
    readonly patch: string,
    message: string,
  ) {
    super(`hypercore patch ${patch}: ${message} (re-check overlay/hypercore-patches/${patch}.ts)`)
    this.name = 'PatchError'
  }
}

/** The packages the patches reach into. */
export type PatchedPackage = 'hypercore' | '@hyperswarm/secret-stream'

const require = createRequire(import.meta.url)

/** The version of `pkg` this process resolves (its package.json, as Node's resolution finds it). */
export function installedVersion(pkg: PatchedPackage): string {
  const manifest = JSON.parse(readFileSync(require.resolve(`${pkg}/package.json`), 'utf8')) as {
    version?: unknown
  }
  if (typeof manifest.version !== 'string') throw new Error(`${pkg}/package.json has no version`)
  return manifest.version
}

/** Fails unless `installed` is the exact version the patch was written and tested against. */
export function checkVersion(
  patch: string,
  pkg: PatchedPackage,
  written_for: string,
  installed: string,
): void {
  if (installed !== written_for) {
    throw new PatchError(patch, `written for ${pkg} ${written_for}, but ${installed} is installed`)
  }
}

/** Fails unless `owner[name]` is a function (a method the patch calls or replaces). */
export function checkMethod(patch: string, owner: unknown, where: string, name: string): void {
  const value = owner === null || owner === undefined ? undefined : (owner as Record<string, unknown>)[name]
  if (typeof value !== 'function') throw new PatchError(patch, `${where}.${name} is not a method`)
}

type FieldType = 'number' | 'boolean' | 'object' | 'function'

/**
 * Fails unless the field at `path` (dot-separated, from `owner`) has type `type` (`object`: non-null).
 * Fields read at run time are checked on live instances, so a renamed field fails here, not silently.
 */
export function checkField(
  patch: string,
  owner: unknown,
  where: string,
  path: string,
  type: FieldType,
): void {
  let value: unknown = owner
  for (const part of path.split('.')) {
    value = value === null || value === undefined ? undefined : (value as Record<string, unknown>)[part]
  }
  const actual = value === null ? 'null' : typeof value
  if (actual !== type) throw new PatchError(patch, `${where}.${path} is ${actual}, expected ${type}`)
}
