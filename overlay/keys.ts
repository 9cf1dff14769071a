import assert from 'node:assert/strict'
import {
  createHash,
  createHmac,
  createPrivateKey,
  createPublicKey,
  randomBytes,
  sign,
  timingSafeEqual,
  verify,
} from 'node:crypto'
import HyperDHT, { type KeyPair } from 'hyperdht'

/**
 * Key material of a federation. A node's identity is an ed25519 key pair (sodium layout: 32-byte public
 * key, 64-byte secret key) used as its hyperswarm key pair and as the signer of its snapshot core. The
 * federation secret (32 random bytes) is never sent; everything else is derived from it with
 * domain-separated hashes, so learning the topic or a block key reveals nothing about the others.
 */

export type { KeyPair } from 'hyperdht'

export const SECRET_BYTES = 32
export const PROOF_BYTES = 32

export function createIdentity(): KeyPair {
  return HyperDHT.keyPair()
}

/** Deterministic identity from a 32-byte seed (tests and fixtures). */
export function identityFromSeed(seed: Uint8Array): KeyPair {
  assert.equal(seed.byteLength, 32, 'identity seed must be 32 bytes')
  return HyperDHT.keyPair(Buffer.from(seed))
}

export function createSecret(): Buffer {
  return randomBytes(SECRET_BYTES)
}

export function assertIdentity(keyPair: KeyPair): void {
  assert.equal(keyPair.publicKey.byteLength, 32, 'identity publicKey must be 32 bytes')
  assert.equal(keyPair.secretKey.byteLength, 64, 'identity secretKey must be 64 bytes (sodium layout)')
}

function derive(label: string, secret: Uint8Array): Buffer {
  assert.equal(secret.byteLength, SECRET_BYTES, 'federation secret must be 32 bytes')
  return createHash('sha256').update(`sustain/${label}\0`).update(secret).digest()
}

/** The hyperswarm topic every member joins. */
export function deriveTopic(secret: Uint8Array): Buffer {
  return derive('topic', secret)
}

/** Hypercore block-encryption key for snapshot data at rest and in transit. */
export function deriveBlockKey(secret: Uint8Array): Buffer {
  return derive('blocks', secret)
}

/** HMAC key of the admission proof. */
export function deriveAdmissionKey(secret: Uint8Array): Buffer {
  return derive('admission', secret)
}

/**
 * Proof that the holder of `publicKey` knows the secret, bound to one connection: the Noise handshake
 * hash is unique per connection, and including the prover's key stops a peer reflecting our own proof.
 */
export function admissionProof(
  admissionKey: Buffer,
  handshakeHash: Uint8Array,
  publicKey: Uint8Array,
): Buffer {
  assert.equal(handshakeHash.byteLength, 64, 'handshake hash must be 64 bytes')
  return createHmac('sha256', admissionKey)
    .update('sustain/admission/v1\0')
    .update(handshakeHash)
    .update(publicKey)
    .digest()
}

export function verifyAdmissionProof(
  admissionKey: Buffer,
  handshakeHash: Uint8Array,
  remotePublicKey: Uint8Array,
  proof: Uint8Array,
): boolean {
  if (proof.byteLength !== PROOF_BYTES) return false
  return timingSafeEqual(admissionProof(admissionKey, handshakeHash, remotePublicKey), proof)
}

/** Hyperswarm topic of the control plane (admission, pings, control messages; no replication). */
export function deriveControlTopic(secret: Uint8Array): Buffer {
  return derive('control-topic', secret)
}

/**
 * The control plane's own key pair, derived from the identity: stable across restarts (so announces
 * and dial holds refer to the same key) and a different Noise key from the data plane's connection.
 */
export function controlKeyPair(identity: KeyPair): KeyPair {
  assertIdentity(identity)
  const seed = createHash('sha256').update('sustain/control-key\0').update(identity.secretKey).digest()
  return HyperDHT.keyPair(seed)
}

// DER wrappers that turn raw ed25519 keys (sodium layout) into Node KeyObjects.
const ED25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex')
const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex')
export const BINDING_BYTES = 64

function bindingMessage(handshakeHash: Uint8Array, controlPublicKey: Uint8Array): Buffer {
  assert.equal(handshakeHash.byteLength, 64, 'handshake hash must be 64 bytes')
  return Buffer.concat([Buffer.from('sustain/control-binding/v1\0'), handshakeHash, controlPublicKey])
}

/**
 * The identity's signature over one control connection (its handshake hash and the control key that
 * speaks on it): ties the control plane's peer to its identity, so a member cannot heartbeat or send
 * control messages in another member's name.
 */
export function signControlBinding(
  identity: KeyPair,
  handshakeHash: Uint8Array,
  controlPublicKey: Uint8Array,
): Buffer {
  const key = createPrivateKey({
    key: Buffer.concat([ED25519_PKCS8_PREFIX, identity.secretKey.subarray(0, 32)]),
    format: 'der',
    type: 'pkcs8',
  })
  return sign(null, bindingMessage(handshakeHash, controlPublicKey), key)
}

export function verifyControlBinding(
  identityPublicKey: Uint8Array,
  handshakeHash: Uint8Array,
  controlPublicKey: Uint8Array,
  signature: Uint8Array,
): boolean {
  if (identityPublicKey.byteLength !== 32 || signature.byteLength !== BINDING_BYTES) return false
  const key = createPublicKey({
    key: Buffer.concat([ED25519_SPKI_PREFIX, identityPublicKey]),
    format: 'der',
    type: 'spki',
  })
  return verify(null, bindingMessage(handshakeHash, controlPublicKey), key, signature)
}
