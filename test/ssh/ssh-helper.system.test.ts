import { createHash, randomBytes } from 'node:crypto'
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PassThrough, Readable } from 'node:stream'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { HelperError } from '../../src/drivers/process/run-helper.ts'
import {
  HostKeyMismatchError,
  runSshHelper,
  type SshHelperTarget,
  shellQuote,
} from '../../src/drivers/ssh-helper.ts'
import { startSshd, type TestSshd } from './sshd.ts'

/** The "guest" helper: echo args/env/stdin, stream stdin back, write a lot, hang, die by a signal. */
const HELPER = `#!/usr/bin/env bash
case "$1" in
  echo) printf 'args:'; printf ' [%s]' "\${@:2}"; echo; echo "ctx=$SUSTAIN_FORK_ID|$SUSTAIN_STATE_DIR"; echo oops >&2; exit 3 ;;
  cat) exec cat ;;
  big) head -c $((20 * 1024 * 1024)) /dev/zero ;;
  slow) echo $$ > "$PIDFILE"; exec sleep 60 ;;
  killed) kill -TERM $$ ;;
  *) echo "unknown verb: $1" >&2; exit 64 ;;
esac
`

let dir: string
let sshd: TestSshd
let target: SshHelperTarget

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sustain-ssh-'))
  sshd = await startSshd(dir)
  await writeFile(join(dir, 'helper'), HELPER)
  await chmod(join(dir, 'helper'), 0o755)
  target = {
    host: '127.0.0.1',
    port: sshd.port,
    username: sshd.username,
    private_key: sshd.private_key,
    host_key_sha256: sshd.host_key_sha256,
    helper_path: join(dir, 'helper'),
    env: { SUSTAIN_STATE_DIR: '/var/lib/guest state' },
  }
})
afterAll(async () => {
  await sshd?.stop()
  await rm(dir, { recursive: true, force: true })
})

describe('runSshHelper against a real OpenSSH server', () => {
  it('runs a verb with its arguments and environment; exit code, stdout and stderr come back', async () => {
    const result = await runSshHelper(target, 'echo', ['--since', '123', "it's a $HOME `x`"], {
      env: { SUSTAIN_FORK_ID: 'w:1:2' },
    })
    expect(result).toEqual({
      code: 3,
      stdout: Buffer.from("args: [--since] [123] [it's a $HOME `x`]\nctx=w:1:2|/var/lib/guest state\n"),
      stderr: 'oops\n',
    })
    expect((await runSshHelper(target, 'nope', [])).code).toBe(64)
    expect((await runSshHelper(target, 'killed', [])).code).toBe(128 + 15)
  })

  it('streams stdin and stdout (32 MiB each way) over the channel', async () => {
    const data = randomBytes(32 * 1024 * 1024)
    const out = new PassThrough()
    const hash = createHash('sha256')
    let bytes = 0
    out.on('data', (chunk: Buffer) => {
      bytes += chunk.length
      hash.update(chunk)
    })
    const chunks = Array.from({ length: 32 }, (_, i) => data.subarray(i << 20, (i + 1) << 20))
    const result = await runSshHelper(target, 'cat', [], { stdin: Readable.from(chunks), stdout: out })
    expect(result.code).toBe(0)
    expect(result.stdout.length).toBe(0)
    expect(bytes).toBe(data.length)
    expect(hash.digest('hex')).toBe(createHash('sha256').update(data).digest('hex'))
    const big = await runSshHelper(target, 'big', [])
    expect(big.stdout.length).toBe(20 * 1024 * 1024)
  })

  it('refuses a host key other than the pinned one, with both fingerprints in the error', async () => {
    const wrong = `SHA256:${createHash('sha256').update('another host').digest('base64').replace(/=+$/, '')}`
    const error = await runSshHelper({ ...target, host_key_sha256: wrong }, 'echo', []).catch(
      (e: unknown) => e,
    )
    expect(error).toBeInstanceOf(HostKeyMismatchError)
    expect((error as Error).message).toContain(`expected ${wrong}, presented ${sshd.host_key_sha256}`)
  })

  it('fails clearly with a key the guest does not authorize', async () => {
    const other = await mkdtemp(join(tmpdir(), 'sustain-ssh-key-'))
    try {
      const { execFileSync } = await import('node:child_process')
      execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(other, 'k')])
      const error = await runSshHelper(
        { ...target, private_key: await readFile(join(other, 'k')) },
        'echo',
        [],
      ).catch((e: unknown) => e)
      expect(error).toBeInstanceOf(HelperError)
      expect((error as Error).message).toMatch(/authentication failed/)
    } finally {
      await rm(other, { recursive: true, force: true })
    }
  })

  it('a timeout rejects at once and the helper in the guest is killed within seconds', async () => {
    const pidfile = join(dir, 'slow.pid')
    const started = performance.now()
    const error = await runSshHelper(target, 'slow', [], {
      timeout_ms: 1500,
      env: { PIDFILE: pidfile },
    }).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(HelperError)
    expect((error as Error).message).toMatch(/timed out after 1500 ms/)
    expect(performance.now() - started).toBeLessThan(5000)
    const pid = Number(await readFile(pidfile, 'utf8'))
    const alive = () => {
      try {
        process.kill(pid, 0)
        return true
      } catch {
        return false
      }
    }
    for (let i = 0; i < 250 && alive(); i++) await new Promise((ok) => setTimeout(ok, 20))
    expect(alive()).toBe(false)
  })

  it('quotes words for the remote shell', () => {
    expect(shellQuote('plain-word_1.2')).toBe('plain-word_1.2')
    expect(shellQuote("a b'c")).toBe(`'a b'\\''c'`)
  })
})
