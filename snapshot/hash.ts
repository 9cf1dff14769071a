import { createHash } from 'node:crypto'

/** Content hashes: sha256 (fastest here, SHA-NI) or blake2b512. A hash's hex length names its algorithm. */
export type HashAlg = 'sha256' | 'blake2b512'

export const HASH_ALGS: readonly HashAlg[] = ['sha256', 'blake2b512']

const HEX_LENGTH: Record<HashAlg, number> = { sha256: 64, blake2b512: 128 }

export function hashBytes(alg: HashAlg, bytes: Uint8Array): Buffer {
  return createHash(alg).update(bytes).digest()
}

export function toHex(hash: Uint8Array): string {
  return Buffer.from(hash.buffer, hash.byteOffset, hash.byteLength).toString('hex')
}

export function fromHex(hex: string): Buffer {
  return Buffer.from(hex, 'hex')
}

export function sameHash(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.compare(a, b) === 0
}

/** The algorithm a hex hash was made with, or undefined when it is no valid hash. */
export function algOfHex(hex: string): HashAlg | undefined {
  if (!/^[0-9a-f]+$/.test(hex)) return undefined
  return HASH_ALGS.find((alg) => HEX_LENGTH[alg] === hex.length)
}

const emptyHashes = new Map<HashAlg, Buffer>()

/** Hash of zero bytes: a delta "against the empty chunk" needs no base blob. */
export function emptyHash(alg: HashAlg): Buffer {
  let hash = emptyHashes.get(alg)
  if (!hash) {
    hash = hashBytes(alg, new Uint8Array(0))
    emptyHashes.set(alg, hash)
  }
  return hash
}
