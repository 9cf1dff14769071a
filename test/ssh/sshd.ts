import { type ChildProcess, execFile, spawn } from 'node:child_process'
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises'
import { userInfo } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { freePort } from '../../src/util/free-port.ts'
import { REQUIREMENTS, requireTools } from '../system/requirements.ts'

const run = promisify(execFile)
export const SSHD = REQUIREMENTS.sshd.what

export interface TestSshd {
  port: number
  username: string
  /** The client key authorized for `username`. */
  private_key: Buffer
  /** `SHA256:...` of the server's host key, as ssh-keygen prints it. */
  host_key_sha256: string
  stop(): Promise<void>
}

async function keygen(path: string): Promise<void> {
  await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', path])
}

/**
 * A real OpenSSH server on 127.0.0.1 with its own host key and authorized_keys in `dir`, run in the
 * foreground (-D) as our child and stopped by its pid. Resolves once it says it listens.
 */
export async function startSshd(dir: string): Promise<TestSshd> {
  requireTools('sshd', 'ssh-keygen')
  await mkdir('/run/sshd', { recursive: true, mode: 0o755 }) // privilege separation directory
  await keygen(join(dir, 'host_key'))
  await keygen(join(dir, 'client_key'))
  await writeFile(join(dir, 'authorized_keys'), await readFile(join(dir, 'client_key.pub')))
  await chmod(join(dir, 'authorized_keys'), 0o600)
  const { stdout } = await run('ssh-keygen', ['-l', '-E', 'sha256', '-f', join(dir, 'host_key.pub')])
  const host_key_sha256 = stdout.split(' ')[1]!
  const port = await freePort()
  const config = join(dir, 'sshd_config')
  await writeFile(
    config,
    [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${join(dir, 'host_key')}`,
      `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
      `PidFile ${join(dir, 'sshd.pid')}`,
      'UsePAM no',
      'StrictModes no',
      'PermitRootLogin prohibit-password',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      `LogLevel ${process.env['SSHD_DEBUG'] ? 'DEBUG2' : 'INFO'}`,
      '',
    ].join('\n'),
  )
  const child: ChildProcess = spawn(SSHD, ['-D', '-e', '-f', config], { stdio: ['ignore', 'ignore', 'pipe'] })
  let log = ''
  await new Promise<void>((resolve, reject) => {
    child.stderr!.on('data', (chunk: Buffer) => {
      log += chunk.toString()
      if (log.includes('Server listening on 127.0.0.1')) resolve()
      if (process.env['SSHD_DEBUG']) process.stderr.write(chunk)
    })
    child.once('exit', (code) => reject(new Error(`sshd exited (${code}): ${log}`)))
  })
  const exited = new Promise<void>((ok) => child.once('exit', () => ok()))
  return {
    port,
    username: userInfo().username,
    private_key: await readFile(join(dir, 'client_key')),
    host_key_sha256,
    async stop() {
      if (child.exitCode === null && child.pid !== undefined) process.kill(child.pid, 'SIGTERM')
      await exited
    },
  }
}
