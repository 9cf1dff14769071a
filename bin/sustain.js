#!/usr/bin/env -S node --initial-old-space-size=128
// The `sustain` command. Runs the compiled CLI, dist/cli.js (built by `npm ci` through `prepare`, or
// `npm run build`), while it is newer than every source it was built from; otherwise (never built, a
// source edited or pulled since, or SUSTAIN_SOURCES=1) the TypeScript sources through tsx, which starts
// much slower (bench/RESULTS.md, "CLI start").
// The flag is HEAP_FLAGS of src/util/heap-flags.ts (V8 reads it only at start; NODE_OPTIONS refuses it).
import { readFileSync, statSync } from 'node:fs'

const ROOT = new URL('../', import.meta.url)

/** Why dist/ must not run (missing or older than a source), or null when it is current. */
function staleBuild() {
  let record
  try {
    record = JSON.parse(readFileSync(new URL('dist/build.json', ROOT), 'utf8'))
  } catch {
    return 'dist/ is not built'
  }
  for (const input of record.inputs) {
    let mtime_ms
    try {
      mtime_ms = statSync(new URL(input, ROOT)).mtimeMs
    } catch {
      return `${input} is gone`
    }
    if (mtime_ms > record.started_ms) return `${input} changed since dist/ was built`
  }
  return null
}

const from_sources = process.env.SUSTAIN_SOURCES === '1'
const stale = from_sources ? null : staleBuild()
if (!from_sources && stale === null) {
  await import('../dist/cli.js')
} else {
  if (stale !== null) {
    process.stderr.write(
      `sustain: running the TypeScript sources (${stale}; \`npm run build\` compiles them)\n`,
    )
  }
  const { register } = await import('tsx/esm/api')
  register()
  await import('../src/cli/main.ts')
}
