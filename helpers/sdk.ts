/**
 * Write a helper in TypeScript: `defineHelper({ probe, archive, merge }).main()` is a complete helper
 * executable (helpers/HELPERS.md). The SDK parses argv and the environment into a typed context,
 * hands the handlers stdin/stdout as streams, answers 64 for verbs that are not defined and turns a
 * thrown error into exit code 1 with the message on stderr.
 */
import type { Readable, Writable } from 'node:stream'
import { requestSnapshot } from './control.ts'
import {
  ENV,
  EXIT_BAD_ARGS,
  EXIT_FAILURE,
  EXIT_OK,
  EXIT_UNKNOWN_VERB,
  HELPER_VERBS,
  type HelperVerb,
} from './protocol.ts'

export interface HelperContext {
  verb: HelperVerb
  /** Arguments after the verb, as given. */
  args: string[]
  env: NodeJS.ProcessEnv
  state_dir: string
  service_dir: string | null
  port: number | null
  stdin: Readable
  stdout: Writable
  /** A line on stderr (the node logs the helper's stderr). */
  log(message: string): void
  /** Asks the node for a snapshot now (needs SUSTAIN_CONTROL_SOCKET). */
  requestSnapshot(): Promise<unknown>
}

export interface MergeContext extends HelperContext {
  /** The fork time T (epoch ms) from `--since T`. */
  since_ms: number
  fork_id: string | null
  /** The other server's key and name (empty when the node did not say). */
  peer: string | null
  peer_name: string | null
}

export interface InfoContext extends HelperContext {
  newest_snapshot_ms: number | null
  all_online_ms: number | null
  /** True while the federation is split. */
  split: boolean
}

type Handler<C> = (context: C) => void | Promise<void>

export interface HelperDefinition {
  /** Resolve (or return true) when the service answers correctly; false or a throw is a failed probe. */
  probe?: (context: HelperContext) => unknown
  quiesce?: Handler<HelperContext>
  resume?: Handler<HelperContext>
  /** Write the data changed since `since_ms` to `context.stdout`. */
  archive?: Handler<MergeContext>
  /** Read an archive from `context.stdin` and merge it into the running service. Must be idempotent. */
  merge?: Handler<MergeContext>
  info?: Handler<InfoContext>
}

/** A failure with a chosen exit code (any error thrown by a handler exits 1). */
export class HelperFailure extends Error {
  constructor(
    message: string,
    readonly exit_code = EXIT_FAILURE,
  ) {
    super(message)
    this.name = 'HelperFailure'
    if (exit_code === EXIT_OK || exit_code === EXIT_UNKNOWN_VERB) {
      throw new RangeError(`HelperFailure exit code must be a failure other than 64, got ${exit_code}`)
    }
  }
}

export interface HelperIo {
  stdin: Readable
  stdout: Writable
  stderr: Writable
}

export interface Helper {
  /** Runs one invocation; resolves with the exit code (never rejects). */
  run(argv: readonly string[], env: NodeJS.ProcessEnv, io: HelperIo): Promise<number>
  /** Runs with process.argv/env/stdio and exits with the code once stdout is flushed. */
  main(): void
}

function optionalInt(env: NodeJS.ProcessEnv, name: string): number | null {
  const text = env[name]
  if (text === undefined || text === '') return null
  const value = Number(text)
  if (!Number.isSafeInteger(value))
    throw new HelperFailure(`${name} is not an integer: ${text}`, EXIT_BAD_ARGS)
  return value
}

/** `--since T` with T a non-negative integer (epoch ms). */
export function parseSince(args: readonly string[]): number {
  const at = args.indexOf('--since')
  const text = at === -1 ? undefined : args[at + 1]
  if (text === undefined) throw new HelperFailure('missing --since T (fork time, epoch ms)', EXIT_BAD_ARGS)
  if (!/^\d+$/.test(text)) {
    throw new HelperFailure(
      `--since must be an integer of epoch ms, got ${JSON.stringify(text)}`,
      EXIT_BAD_ARGS,
    )
  }
  return Number(text)
}

function baseContext(verb: HelperVerb, argv: readonly string[], env: NodeJS.ProcessEnv, io: HelperIo) {
  const state_dir = env[ENV.state_dir]
  if (!state_dir) throw new HelperFailure(`${ENV.state_dir} is not set`, EXIT_BAD_ARGS)
  const control_socket = env[ENV.control_socket]
  const context: HelperContext = {
    verb,
    args: argv.slice(1),
    env,
    state_dir,
    service_dir: env[ENV.service_dir] || null,
    port: optionalInt(env, ENV.port),
    stdin: io.stdin,
    stdout: io.stdout,
    log: (message) => io.stderr.write(`${message}\n`),
    requestSnapshot: () => {
      if (!control_socket) return Promise.reject(new Error(`${ENV.control_socket} is not set`))
      return requestSnapshot(control_socket)
    },
  }
  return context
}

function mergeContext(base: HelperContext): MergeContext {
  return {
    ...base,
    since_ms: parseSince(base.args),
    fork_id: base.env[ENV.fork_id] || null,
    peer: base.env[ENV.peer] || null,
    peer_name: base.env[ENV.peer_name] || null,
  }
}

function infoContext(base: HelperContext): InfoContext {
  return {
    ...base,
    newest_snapshot_ms: optionalInt(base.env, ENV.newest_snapshot_ms),
    all_online_ms: optionalInt(base.env, ENV.all_online_ms),
    split: base.env[ENV.split] === '1',
  }
}

async function dispatch(definition: HelperDefinition, context: HelperContext): Promise<number> {
  switch (context.verb) {
    case 'probe': {
      const answer = await definition.probe!(context)
      if (answer === false) throw new HelperFailure('probe: the service does not answer correctly')
      return EXIT_OK
    }
    case 'quiesce':
    case 'resume':
      await definition[context.verb]!(context)
      return EXIT_OK
    case 'archive':
    case 'merge':
      await definition[context.verb]!(mergeContext(context))
      return EXIT_OK
    case 'info':
      await definition.info!(infoContext(context))
      return EXIT_OK
  }
}

export function defineHelper(definition: HelperDefinition): Helper {
  const run = async (argv: readonly string[], env: NodeJS.ProcessEnv, io: HelperIo): Promise<number> => {
    const verb = argv[0] ?? ''
    if (!(HELPER_VERBS as readonly string[]).includes(verb) || !definition[verb as HelperVerb]) {
      io.stderr.write(`unknown verb: ${verb || '(none)'}\n`)
      return EXIT_UNKNOWN_VERB
    }
    try {
      return await dispatch(definition, baseContext(verb as HelperVerb, argv, env, io))
    } catch (error) {
      const failure = error instanceof HelperFailure ? error : null
      const message = error instanceof Error ? error.message : String(error)
      io.stderr.write(`${verb}: ${message}\n`)
      return failure?.exit_code ?? EXIT_FAILURE
    }
  }
  return {
    run,
    main() {
      const io = { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr }
      void run(process.argv.slice(2), process.env, io).then((code) => {
        // Exit only after stdout is flushed: an archive piped to the node must arrive whole.
        process.stdout.write('', () => process.exit(code))
      })
    },
  }
}
