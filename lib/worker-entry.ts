/** The bundle's own URL, defined by the build (src/cli/build.ts); absent when the sources run through tsx. */
declare const SUSTAIN_DIST_URL: string | undefined

/**
 * The script a worker thread runs: the compiled `name`.js beside the bundle when this code runs compiled
 * (dist/), else `source_entry`, the .mjs beside the sources that registers tsx first.
 */
export function workerEntry(name: string, source_entry: URL): URL {
  return typeof SUSTAIN_DIST_URL === 'string' ? new URL(`${name}.js`, SUSTAIN_DIST_URL) : source_entry
}
