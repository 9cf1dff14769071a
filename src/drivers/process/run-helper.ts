import { type ChildProcess, spawn } from 'node:child_process'
import { constants } from 'node:os'
import type { HelperOptions, HelperResult } from '../driver.ts'
import { signalGroup } from './process-group.ts'

export const DEFAULT_HELPER_TIMEOUT_MS = 60_000
/** Exit code of a helper that does not know a verb (sysexits EX_USAGE): the verb is optional. */
export const HELPER_UNKNOWN_VERB = 64
const MAX_STDOUT_BYTES = 64 * 1024 * 1024
const MAX_STDERR_BYTES = 64 * 1024

export interface HelperSpec {
  /** Absolute path of the helper executable. */
  path: string
  cwd: string
  env: NodeJS.ProcessEnv
}

/** A failure to run a helper at all (not a helper that ran and exited non-zero). */
export class HelperError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'HelperError'
  }
}

/**
 * Runs `helper verb args...` in its own process group (a timeout kills the helper and anything it
 * started), streaming stdin/stdout when asked. Resolves with the exit code (128 + signal number when
 * killed by a signal), stdout (unless streamed) and the tail of stderr.
 */
export function runHelper(
  spec: HelperSpec,
  verb: string,
  args: readonly string[],
  options: HelperOptions = {},
  /** Helpers in progress, each with a way to kill it and reject its promise (the driver's close). */
  running?: Map<ChildProcess, (reason: string) => void>,
): Promise<HelperResult> {
  const timeout_ms = options.timeout_ms ?? DEFAULT_HELPER_TIMEOUT_MS
  return new Promise<HelperResult>((resolve, reject) => {
    const child = spawn(spec.path, [verb, ...args], {
      cwd: spec.cwd,
      env: { ...spec.env, ...options.env },
      stdio: [options.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'],
      detached: true,
    })
    const stdout: Buffer[] = []
    let stdout_bytes = 0
    let stderr = Buffer.alloc(0)
    let failure: HelperError | undefined
    const fail = (message: string) => {
      failure ??= new HelperError(message)
      if (child.pid !== undefined) signalGroup(child.pid, 'SIGKILL')
    }
    running?.set(child, (reason) => fail(`helper ${verb}: ${reason}`))
    const timer = setTimeout(
      () => fail(`helper ${verb} timed out after ${timeout_ms} ms (killed)`),
      timeout_ms,
    )

    if (options.stdin && child.stdin) {
      // A helper may exit without reading all of its input; that is its answer, not our error.
      child.stdin.on('error', () => {})
      options.stdin.on('error', (error) => fail(`helper ${verb}: reading its input failed: ${error.message}`))
      options.stdin.pipe(child.stdin)
    }
    if (options.stdout) {
      child.stdout!.pipe(options.stdout as NodeJS.WritableStream, { end: false })
    } else {
      child.stdout!.on('data', (chunk: Buffer) => {
        stdout_bytes += chunk.length
        if (stdout_bytes > MAX_STDOUT_BYTES) fail(`helper ${verb} wrote more than ${MAX_STDOUT_BYTES} bytes`)
        else stdout.push(chunk)
      })
    }
    child.stderr!.on('data', (chunk: Buffer) => {
      stderr = Buffer.concat([stderr, chunk])
      if (stderr.length > MAX_STDERR_BYTES) stderr = stderr.subarray(stderr.length - MAX_STDERR_BYTES)
    })
    child.on('error', (error: NodeJS.ErrnoException) => {
      fail(`helper ${spec.path} cannot run: ${error.code === 'ENOENT' ? 'no such file' : error.message}`)
      if (child.pid === undefined) {
        // Never spawned: no 'close' is guaranteed to follow.
        clearTimeout(timer)
        running?.delete(child)
        reject(failure)
      }
    })
    // 'close': the process exited and its stdout/stderr are drained.
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      running?.delete(child)
      if (failure) return reject(failure)
      resolve({
        code: code ?? 128 + (signal ? (constants.signals[signal] ?? 0) : 0),
        stdout: Buffer.concat(stdout),
        stderr: stderr.toString('utf8'),
      })
    })
  })
}
