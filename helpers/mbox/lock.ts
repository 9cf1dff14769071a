/**
 * Mailbox locking as Postfix does it for mbox on Debian (`mailbox_delivery_lock = fcntl, dotlock`,
 * the same for virtual_mailbox_lock): first the dotlock `<mbox>.lock` (created with O_EXCL; Postfix
 * takes it before it even opens the mailbox), then an fcntl write lock on the mailbox itself. Node has
 * no fcntl locks, so a small perl process (perl-base is Essential on Debian) takes the fcntl locks and
 * holds them until told or until its stdin closes: if this process dies, its locks go with it.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdir, open, stat, unlink } from 'node:fs/promises'
import { hostname } from 'node:os'
import { basename, join } from 'node:path'

/** Postfix's stale_lock_time: a dotlock older than this is left over by a crash and is removed. */
export const STALE_DOTLOCK_MS = 500_000
export const DEFAULT_LOCK_TIMEOUT_MS = 60_000

/**
 * One perl process per node process holds the fcntl locks: spawning one per mailbox cost more than
 * merging it. Requests are lines: `L <path>` answers `ok` (locked), `busy` (held elsewhere: retry) or
 * `E <why>`; `U <path>` releases and answers `ok`. struct flock on 64-bit Linux: short type, short
 * whence, (pad), off_t start, off_t len, pid_t pid. Non-blocking F_SETLK, so a wait can time out.
 */
const PERL_FCNTL_LOCKER = String.raw`
use Fcntl qw(F_SETLK F_WRLCK SEEK_SET O_RDWR);
$| = 1;
my %held;
while (my $line = <STDIN>) {
  chomp $line;
  my ($cmd, $path) = split / /, $line, 2;
  if ($cmd eq 'L') {
    my $fh;
    if (!sysopen($fh, $path, O_RDWR)) { print "E cannot open $path: $!\n"; next; }
    my $lock = pack('s s x4 q q i x4', F_WRLCK, SEEK_SET, 0, 0, 0);
    if (fcntl($fh, F_SETLK, $lock)) { $held{$path} = $fh; print "ok\n"; }
    elsif ($!{EAGAIN} || $!{EACCES}) { close($fh); print "busy\n"; }
    else { print "E fcntl lock on $path: $!\n"; close($fh); }
  } elsif ($cmd eq 'U') {
    close(delete $held{$path}) if exists $held{$path};
    print "ok\n";
  } else { print "E bad request\n"; }
}
`

/**
 * The shared lock holder, started on first use. It keeps this process alive only while a request
 * waits for its answer (else a node process that holds no other handle would exit mid-request).
 */
class FcntlLocker {
  private child: ChildProcess | null = null
  private readonly waiting: Array<(answer: string) => void> = []
  private buffered = ''

  private start(): ChildProcess {
    const child = spawn('perl', ['-e', PERL_FCNTL_LOCKER], { stdio: ['pipe', 'pipe', 'inherit'] })
    child.unref()
    for (const stream of [child.stdin, child.stdout] as Array<{ unref?: () => void } | null>)
      stream?.unref?.()
    child.stdin!.on('error', () => {})
    child.stdout!.setEncoding('utf8')
    child.stdout!.on('data', (chunk: string) => {
      this.buffered += chunk
      for (let at = this.buffered.indexOf('\n'); at !== -1; at = this.buffered.indexOf('\n')) {
        const answer = this.buffered.slice(0, at)
        this.buffered = this.buffered.slice(at + 1)
        this.waiting.shift()?.(answer)
      }
      if (this.waiting.length === 0) this.reference(child, false)
    })
    const gone = (why: string) => {
      if (this.child !== child) return
      this.child = null
      // Its locks went with it; whoever waits hears so.
      for (const answer of this.waiting.splice(0)) answer(`E fcntl lock holder: ${why}`)
    }
    child.on('error', (error) => gone(`cannot run perl: ${error.message}`))
    child.on('close', (code) => gone(`perl exited (${code})`))
    return child
  }

  private reference(child: ChildProcess, keep_alive: boolean): void {
    const handles = [child, child.stdin, child.stdout] as Array<{
      ref?: () => void
      unref?: () => void
    } | null>
    for (const handle of handles) keep_alive ? handle?.ref?.() : handle?.unref?.()
  }

  request(command: 'L' | 'U', path: string): Promise<string> {
    if (path.includes('\n')) return Promise.resolve('E a path with a newline')
    this.child ??= this.start()
    const child = this.child
    return new Promise((resolve) => {
      this.waiting.push(resolve)
      this.reference(child, true)
      child.stdin!.write(`${command} ${path}\n`)
    })
  }
}

const locker = new FcntlLocker()

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
      // A lock whose token could not be written (a full disk) is removed at once: left behind, it
      // would stop every delivery until it goes stale (found by the fault lab's disk-full nemesis).
      await handle
        .writeFile(token)
        .finally(() => handle.close())
        .catch(async (error: unknown) => {
          await unlink(lock_path).catch(() => {})
          throw error
        })
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

/** Takes an fcntl write lock on an existing file (held by the shared perl process), waiting up to the deadline. */
export async function takeFcntlLock(path: string, deadline_ms: number): Promise<() => Promise<void>> {
  for (let delay_ms = 5; ; delay_ms = Math.min(delay_ms * 2, 200)) {
    const answer = await locker.request('L', path)
    if (answer === 'ok') {
      return async () => {
        const released = await locker.request('U', path)
        if (released !== 'ok' && !released.startsWith('E fcntl lock holder'))
          throw new Error(released.slice(2))
      }
    }
    if (answer !== 'busy') throw new Error(answer.slice(2))
    if (performance.now() >= deadline_ms) {
      throw new LockTimeoutError(`fcntl lock on ${path} is held by another process (waited too long)`)
    }
    await sleep(delay_ms)
  }
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
