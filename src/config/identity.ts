import { chmod, readFile, stat } from 'node:fs/promises'
import { writeFileAtomic } from '../../lib/atomic-write.ts'
import { createIdentity, type KeyPair } from '../../overlay/keys.ts'
import { ConfigError } from './load.ts'

/** A node's ed25519 identity on disk: JSON with hex keys, mode 0600 (it is the node's private key). */
interface IdentityFile {
  version: 1
  public_key: string
  secret_key: string
}

export async function writeNewIdentity(path: string): Promise<KeyPair> {
  const keyPair = createIdentity()
  const file: IdentityFile = {
    version: 1,
    public_key: keyPair.publicKey.toString('hex'),
    secret_key: keyPair.secretKey.toString('hex'),
  }
  await writeFileAtomic(path, `${JSON.stringify(file, null, 2)}\n`, { mode: 0o600 })
  await chmod(path, 0o600) // the umask may have narrowed it further; never wider
  return keyPair
}

export async function readIdentity(path: string): Promise<KeyPair> {
  const info = await stat(path).catch(() => null)
  if (info === null) throw new ConfigError(`no identity at ${path}: run \`sustain init\` first`)
  if ((info.mode & 0o077) !== 0) {
    throw new ConfigError(
      `${path} is readable by others (mode ${(info.mode & 0o777).toString(8)}): chmod 600 it`,
    )
  }
  let file: IdentityFile
  try {
    file = JSON.parse(await readFile(path, 'utf8')) as IdentityFile
  } catch {
    throw new ConfigError(`${path} is not a Sustain identity file (not JSON)`)
  }
  const ok = /^[0-9a-f]{64}$/.test(file.public_key ?? '') && /^[0-9a-f]{128}$/.test(file.secret_key ?? '')
  if (!ok || file.secret_key.slice(64) !== file.public_key) {
    throw new ConfigError(`${path} is not a valid identity: expected a 32-byte public and 64-byte secret key`)
  }
  return { publicKey: Buffer.from(file.public_key, 'hex'), secretKey: Buffer.from(file.secret_key, 'hex') }
}
