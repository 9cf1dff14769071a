import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { createRequire } from 'node:module'
import { describe, expect, it } from 'vitest'

const ROOT = new URL('../..', import.meta.url)
const require = createRequire(ROOT)

/** pureJsFallbacks() of a fresh process (each module decides once, when it loads). */
function fallbacksIn(env: NodeJS.ProcessEnv): { module: string; fix: string }[] {
  const code = `const m = await import('./src/util/fast-paths.ts'); console.log(JSON.stringify(m.pureJsFallbacks()))`
  const out = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], {
    cwd: ROOT,
    env,
    encoding: 'utf8',
  })
  return JSON.parse(out)
}

/** What is on disk and loads, found without the code under test. */
function nativeLoads(specifier: string): boolean {
  try {
    require(specifier)
    return true
  } catch {
    return false
  }
}

describe('native fast paths (src/util/fast-paths.ts)', () => {
  const { MSGPACKR_NATIVE_ACCELERATION_DISABLED: _, ...env } = process.env

  it('names exactly the native modules this install lacks', () => {
    const expected = [
      ...(nativeLoads('msgpackr-extract') ? [] : ['msgpackr-extract']),
      ...(existsSync(new URL('node_modules/ssh2/lib/protocol/crypto/build/Release/sshcrypto.node', ROOT))
        ? []
        : ['ssh2 crypto binding']),
      ...(nativeLoads('cpu-features') ? [] : ['cpu-features']),
    ]
    expect(fallbacksIn(env).map((f) => f.module)).toEqual(expected)
  })

  it('msgpack in JavaScript when the native extractor is switched off, with the fix', () => {
    const fallbacks = fallbacksIn({ ...env, MSGPACKR_NATIVE_ACCELERATION_DISABLED: 'true' })
    expect(fallbacks.find((f) => f.module === 'msgpackr-extract')?.fix).toBe(
      'unset MSGPACKR_NATIVE_ACCELERATION_DISABLED',
    )
  })
})
