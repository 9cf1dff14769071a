/**
 * The SSH transport for helpers: runs `HELPER VERB ARGS` inside a VM guest over SSH (ssh2), with the
 * same result as ServiceDriver.helper on the process driver. Key authentication only; the guest's
 * host key is pinned by its OpenSSH fingerprint (`SHA256:...`) and any other key is refused before
 * authentication. stdin/stdout stream over the channel (archives of any size). Context goes on the
 * command line through `env` (sshd drops client environment variables unless configured to accept them).
 */
import { createHash } from 'node:crypto'
import { constants } from 'node:os'
import { Client, type ClientChannel } from 'ssh2'
import type { HelperOptions, HelperResult } from './driver.ts'
import { DEFAULT_HELPER_TIMEOUT_MS, HelperError } from './process/run-helper.ts'

const MAX_STDOUT_BYTES = 64 * 1024 * 1024
const MAX_STDERR_BYTES = 64 * 1024
const DEFAULT_CONNECT_TIMEOUT_MS = 10_000
/** How long a killed helper's channel may take to close before we hang up anyway. */
const KILL_GRACE_MS = 2_000

export interface SshHelperTarget {
  host: string
  port: number
  username: string
  /** Private key (OpenSSH or PEM format). */
  private_key: Buffer | string
  passphrase?: string
  /** The guest's host key fingerprint as `ssh-keygen -lf` prints it: `SHA256:<base64, no padding>`. */
  host_key_sha256: string
  /** Path of the helper executable in the guest. */
  helper_path: string
  /** Environment every verb gets (SUSTAIN_STATE_DIR, SUSTAIN_PORT, ... as seen in the guest). */
  env?: Record<string, string>
  connect_timeout_ms?: number
}

/** The guest presented another host key than the pinned one: nothing was sent, not even the user name. */
export class HostKeyMismatchError extends HelperError {
  constructor(
    readonly expected: string,
    readonly presented: string,
    where: string,
  ) {
    super(
      `host key of ${where} does not match: expected ${expected}, presented ${presented}; refusing to connect`,
    )
    this.name = 'HostKeyMismatchError'
  }
}

/** The OpenSSH fingerprint of a host key in wire format. */
export function sshFingerprint(key: Buffer): string {
  return `SHA256:${createHash('sha256').update(key).digest('base64').replace(/=+$/, '')}`
}

/** Quotes a word for a POSIX shell. */
export function shellQuote(word: string): string {
  return /^[A-Za-z0-9_./:=@%+-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`
}

/**
 * The remote command line: `exec timeout -s KILL N env K=V ... HELPER VERB ARGS`. timeout(1) in the
 * guest (coreutils, or busybox: both take this form) kills the helper when the time is up: sshd does
 * not kill a command without a terminal when the connection drops, and refuses "signal" requests for
 * root logins. coreutils' timeout also kills what the helper started (its process group).
 */
export function remoteCommand(
  helper_path: string,
  verb: string,
  args: readonly string[],
  env: Record<string, string>,
  timeout_s: number,
): string {
  if (!Number.isInteger(timeout_s) || timeout_s <= 0) throw new RangeError(`bad timeout_s ${timeout_s}`)
  for (const name of Object.keys(env)) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name))
      throw new HelperError(`bad environment variable name: ${name}`)
  }
  const assignments = Object.entries(env).map(([name, value]) => `${name}=${value}`)
  const words = [...assignments, helper_path, verb, ...args].map(shellQuote)
  return [`exec timeout -s KILL ${timeout_s} env`, ...words].join(' ')
}

/**
 * Sends a "signal" request. ssh2's channel.signal() sends nothing once our side of the
 * channel is ended (stdin done), yet the helper still runs: then the request goes out through the
 * protocol object directly (ssh2 is pinned to an exact version).
 */
function sendSignal(channel: ClientChannel, name: 'TERM' | 'KILL'): boolean {
  const internal = channel as unknown as {
    outgoing?: { id?: number; state?: string }
    _client?: { _protocol?: { signal?: (id: number, name: string) => void } }
  }
  if (channel.writable) {
    channel.signal(name)
    return true
  }
  const id = internal.outgoing?.id
  const protocol = internal._client?._protocol
  // 'eof': we sent EOF (no more stdin); the channel is still open and the helper still runs.
  const state = internal.outgoing?.state
  if (id === undefined || (state !== 'open' && state !== 'eof') || typeof protocol?.signal !== 'function')
    return false
  protocol.signal(id, name)
  return true
}

/**
 * Runs one helper verb in the guest. Resolves with the exit code (128 + signal number when killed by a
 * signal), stdout (unless streamed to options.stdout) and the tail of stderr; rejects with HelperError
 * when the helper could not run (connection, authentication, host key, timeout).
 */
export function runSshHelper(
  target: SshHelperTarget,
  verb: string,
  args: readonly string[],
  options: HelperOptions = {},
): Promise<HelperResult> {
  const where = `${target.host}:${target.port}`
  const timeout_ms = options.timeout_ms ?? DEFAULT_HELPER_TIMEOUT_MS
  // The guest's own deadline comes a second after ours: ours fires first and asks it to stop.
  const remote_timeout_s = Math.ceil(timeout_ms / 1000) + 1
  const command = remoteCommand(
    target.helper_path,
    verb,
    args,
    { ...target.env, ...options.env },
    remote_timeout_s,
  )
  return new Promise<HelperResult>((resolve, reject) => {
    const client = new Client()
    let presented: string | null = null
    let channel: ClientChannel | null = null
    let settled = false
    const stdout: Buffer[] = []
    let stdout_bytes = 0
    let stderr = Buffer.alloc(0)
    let exit: { code: number | null; signal: string | null } = { code: null, signal: null }

    const finish = (error: HelperError | null) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      if (error) {
        reject(error)
        if (!channel) return client.end()
        // Ask timeout(1) in the guest to stop the helper now (a "signal" request), then hang up once it
        // is gone; if sshd refuses the request, the guest's own deadline stops it a second later.
        const hangUp = setTimeout(() => client.end(), KILL_GRACE_MS)
        channel.once('close', () => {
          clearTimeout(hangUp)
          client.end()
        })
        if (!sendSignal(channel, 'TERM')) client.end()
        return
      }
      client.end()
      const signal_number = exit.signal ? (constants.signals[exit.signal as NodeJS.Signals] ?? 0) : 0
      resolve({
        code: exit.code ?? 128 + signal_number,
        stdout: Buffer.concat(stdout),
        stderr: stderr.toString('utf8'),
      })
    }
    const timer = setTimeout(
      () => finish(new HelperError(`helper ${verb} on ${where} timed out after ${timeout_ms} ms (killed)`)),
      timeout_ms,
    )

    client.on('error', (error: Error & { level?: string }) => {
      if (presented !== null && presented !== target.host_key_sha256) {
        return finish(new HostKeyMismatchError(target.host_key_sha256, presented, where))
      }
      const level = error.level === 'client-authentication' ? 'authentication failed' : error.message
      finish(new HelperError(`ssh to ${where}: ${level}`))
    })
    client.on('ready', () => {
      client.exec(command, (error, stream) => {
        if (error) return finish(new HelperError(`ssh exec on ${where}: ${error.message}`))
        channel = stream
        stream.on('exit', (code: number | null, signal?: string) => {
          exit = { code: typeof code === 'number' ? code : null, signal: signal ?? null }
        })
        if (options.stdout) {
          stream.pipe(options.stdout as NodeJS.WritableStream, { end: false })
        } else {
          stream.on('data', (chunk: Buffer) => {
            stdout_bytes += chunk.length
            if (stdout_bytes > MAX_STDOUT_BYTES) {
              finish(new HelperError(`helper ${verb} wrote more than ${MAX_STDOUT_BYTES} bytes`))
            } else stdout.push(chunk)
          })
        }
        stream.stderr.on('data', (chunk: Buffer) => {
          stderr = Buffer.concat([stderr, chunk])
          if (stderr.length > MAX_STDERR_BYTES) stderr = stderr.subarray(stderr.length - MAX_STDERR_BYTES)
        })
        if (options.stdin) {
          options.stdin.on('error', (e) =>
            finish(new HelperError(`helper ${verb}: reading its input failed: ${e.message}`)),
          )
          options.stdin.pipe(stream)
        } else {
          stream.end()
        }
        stream.on('close', () => finish(null))
      })
    })
    client.connect({
      host: target.host,
      port: target.port,
      username: target.username,
      privateKey: target.private_key,
      ...(target.passphrase ? { passphrase: target.passphrase } : {}),
      readyTimeout: target.connect_timeout_ms ?? DEFAULT_CONNECT_TIMEOUT_MS,
      // Key authentication only: no password, no keyboard-interactive, no agent.
      authHandler: ['publickey'],
      hostVerifier: (key: Buffer) => {
        presented = sshFingerprint(key)
        return presented === target.host_key_sha256
      },
    })
  })
}
