/**
 * Mailbox locking as Postfix does it for mbox on Debian (`mailbox_delivery_lock = fcntl, dotlock`,
 * the same for virtual_mailbox_lock): first the dotlock `<mbox>.lock` (created with O_EXCL; Postfix
 * takes it before it even opens the mailbox), then an fcntl write lock on the mailbox itself. Node has
 * no fcntl locks, so a small perl process (perl-base is Essential on Debian) takes the fcntl lock and
 * holds it until its stdin closes: if this process dies, the lock goes with it.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdir, open, stat, unlink } from 'node:fs/promises'
import { hostname } from 'node:os'
import { basename, join } from 'node:path'

/** Postfix's stale_lock_time: a dotlock older than this is left over by a crash and is removed. */
export const STALE_DOTLOCK_MS = 500_000
export const DEFAULT_LOCK_TIMEOUT_MS = 60_000

/** struct flock on 64-bit Linux: short type, short whence, (pad), off_t start, off_t len, pid_t pid. */
const PERL_FCNTL_LOCK = String.raw`
use Fcntl qw(F_SETLKW F_WRLCK SEEK_SET O_RDWR);
sysopen(my $fh, $ARGV[0], O_RDWR) or die "cannot open $ARGV[0]: $!\n";
my $lock = pack('s s x4 q q i x4', F_WRLCK, SEEK_SET, 0, 0, 0);
fcntl($fh, F_SETLKW, $lock) or die "fcntl lock on $ARGV[0]: $!\n";
$| = 1;
print "locked\n";
my $buffer;
while (sysread(STDIN, $buffer, 4096)) {}
`

export class LockTimeoutError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'LockTimeoutError'
  }
}

export interface LockOptions {
  timeout_ms?: number
  /** Also take the fcntl lock (default true; the dotlock alone is what protects a rename). */
  fcntl?: boolean
  /**
   * Where dotlocks live: `<lock_dir>/<mailbox name>.lock`. Default: next to the mailbox, `<mbox>.lock`,
   * which is what Postfix uses; a service of its own may keep them out of its spool.
   */
  lock_dir?: string
}

/** The dotlock file of a mailbox. */
export function dotlockPath(path: string, lock_dir?: string): string {
  return lock_dir ? join(lock_dir, `${basename(path)}.lock`) : `${path}.lock`
}

export interface MailboxLock {
  release(): Promise<void>
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** Takes the dotlock file `lock_path` (O_EXCL), waiting up to the deadline; removes one older than STALE_DOTLOCK_MS. */
export async function takeDotlock(lock_path: string, deadline_ms: number): Promise<() => Promise<void>> {
  const token = `${process.pid}@${hostname()} ${randomBytes(4).toString('hex')}\n`
  for (let delay_ms = 5; ; delay_ms = Math.min(delay_ms * 2, 200)) {
    try {
      const handle = await open(lock_path, 'wx', 0o600)
      await handle.writeFile(token).finally(() => handle.close())
      return async () => {
        await unlink(lock_path).catch((error: NodeJS.ErrnoException) => {
          if (error.code !== 'ENOENT') throw error
        })
      }
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
    }
    const info = await stat(lock_path).catch(() => null)
    if (info && Date.now() - info.mtimeMs > STALE_DOTLOCK_MS) {
      await unlink(lock_path).catch(() => {})
      continue
    }
    if (performance.now() >= deadline_ms) {
      throw new LockTimeoutError(`${lock_path} is held by another process (waited too long)`)
    }
    await sleep(delay_ms)
  }
}

/** Holds an fcntl write lock on an existing file through a perl child; resolves once it is held. */
export function takeFcntlLock(path: string, deadline_ms: number): Promise<() => Promise<void>> {
  return new Promise((resolve, reject) => {
    const child: ChildProcess = spawn('perl', ['-e', PERL_FCNTL_LOCK, path], {
      stdio: ['pipe', 'pipe', 'pipe'],
    })
    let stderr = ''
    let settled = false
    const exited = new Promise<void>((done) => child.once('close', () => done()))
    const timer = setTimeout(
      () => {
        if (settled) return
        settled = true
        child.kill('SIGKILL')
        reject(new LockTimeoutError(`fcntl lock on ${path} is held by another process (waited too long)`))
      },
      Math.max(0, deadline_ms - performance.now()),
    )
    child.stderr!.on('data', (chunk: Buffer) => {
      stderr += chunk.toString()
    })
    child.stdin!.on('error', () => {})
    child.on('error', (error) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      reject(new Error(`cannot run perl for the fcntl lock: ${error.message}`))
    })
    child.stdout!.on('data', (chunk: Buffer) => {
      if (settled || !chunk.toString().includes('locked')) return
      settled = true
      clearTimeout(timer)
      resolve(async () => {
        child.stdin!.end()
        await exited
      })
    })
    child.on('close', (code) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      reject(new Error(`fcntl lock on ${path} failed (perl exit ${code}): ${stderr.trim()}`))
    })
  })
}

/**
 * Locks a mailbox the way Postfix does (dotlock, then fcntl when the mailbox exists). Release
 * undoes both in reverse order.
 */
export async function lockMailbox(path: string, options: LockOptions = {}): Promise<MailboxLock> {
  const deadline_ms = performance.now() + (options.timeout_ms ?? DEFAULT_LOCK_TIMEOUT_MS)
  if (options.lock_dir) await mkdir(options.lock_dir, { recursive: true })
  const releaseDotlock = await takeDotlock(dotlockPath(path, options.lock_dir), deadline_ms)
  let releaseFcntl: (() => Promise<void>) | null = null
  try {
    const exists = await stat(path).then(
      () => true,
      () => false,
    )
    // Nobody holds an fcntl lock on a file that does not exist; the dotlock covers its creation.
    if (exists && options.fcntl !== false) releaseFcntl = await takeFcntlLock(path, deadline_ms)
  } catch (error) {
    await releaseDotlock()
    throw error
  }
  let released = false
  return {
    async release() {
      if (released) return
      released = true
      try {
        await releaseFcntl?.()
      } finally {
        await releaseDotlock()
      }
    },
  }
}

/** Runs `work` with the mailbox locked. */
export async function withMailboxLock<T>(
  path: string,
  work: () => Promise<T>,
  options?: LockOptions,
): Promise<T> {
  const lock = await lockMailbox(path, options)
  try {
    return await work()
  } finally {
    await lock.release()
  }
}
