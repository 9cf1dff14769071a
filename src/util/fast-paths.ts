/**
 * Native fast paths of dependencies that fall back to JavaScript without a word: `sustain join` logs a
 * line for each one missing (package.json's allowScripts says which install scripts build them).
 * - msgpackr-extract: native string extraction for msgpack (control frames, manifests, recipes); a
 *   prebuilt package per platform, so its install script need not run;
 * - ssh2's crypto binding (AES-GCM, ChaCha20-Poly1305 for the SSH helpers of QEMU guests) and
 *   cpu-features (tells ssh2 whether the CPU has AES instructions): built by their install scripts with
 *   node-gyp, so only where a C++ compiler, make and python3 were present at `npm ci`.
 */
import { createRequire } from 'node:module'
import { isNativeAccelerationEnabled } from 'msgpackr'

const require = createRequire(import.meta.url)

export interface PureJsFallback {
  /** The native module that is not in use. */
  module: string
  why: string
  fix: string
}

function loads(specifier: string): boolean {
  try {
    require(specifier)
    return true
  } catch {
    return false
  }
}

/** Each native fast path this process runs without. */
export function pureJsFallbacks(): PureJsFallback[] {
  const fallbacks: PureJsFallback[] = []
  if (!isNativeAccelerationEnabled) {
    fallbacks.push({
      module: 'msgpackr-extract',
      why: 'msgpack decodes strings in JavaScript: control frames and manifests cost more CPU',
      fix:
        process.env['MSGPACKR_NATIVE_ACCELERATION_DISABLED'] !== undefined
          ? 'unset MSGPACKR_NATIVE_ACCELERATION_DISABLED'
          : 'npm ci with optional dependencies (the prebuilt @msgpackr-extract package for this platform)',
    })
  }
  const crypto = require('ssh2/lib/protocol/crypto.js') as { bindingAvailable?: boolean }
  if (!crypto.bindingAvailable) {
    fallbacks.push({
      module: 'ssh2 crypto binding',
      why: 'SSH helpers (QEMU guests) encrypt with ssh2 in JavaScript: slower archive/merge transfers',
      fix: 'install g++, make and python3, then npm rebuild ssh2',
    })
  }
  if (!loads('cpu-features')) {
    fallbacks.push({
      module: 'cpu-features',
      why: "ssh2 picks its cipher order without knowing the CPU's AES support",
      fix: 'install g++, make and python3, then npm rebuild cpu-features ssh2',
    })
  }
  return fallbacks
}
