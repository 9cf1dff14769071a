/**
 * The helper protocol (helpers/HELPERS.md) as constants: verbs, exit codes, environment variable names
 * and the node's default timeout per verb. The node runtime and the SDK both import this file, so the
 * two sides of the protocol cannot drift apart.
 */

export const HELPER_VERBS = ['probe', 'quiesce', 'resume', 'archive', 'merge', 'info'] as const
export type HelperVerb = (typeof HELPER_VERBS)[number]

/** Success. */
export const EXIT_OK = 0
/** Any failure the helper reports (stderr says why). Every non-zero code other than 64 means failure. */
export const EXIT_FAILURE = 1
/** The arguments are malformed (e.g. `archive` without `--since`). */
export const EXIT_BAD_ARGS = 2
/** The helper does not implement this verb (sysexits EX_USAGE): the verb is optional. */
export const EXIT_UNKNOWN_VERB = 64

/** How long the node lets each verb run before it kills the helper's process group. */
export const HELPER_TIMEOUTS_MS: Readonly<Record<HelperVerb, number>> = {
  probe: 2_000,
  quiesce: 10_000,
  resume: 10_000,
  archive: 10 * 60_000,
  merge: 10 * 60_000,
  info: 10_000,
}

/** Environment variable names (every value is a string; absent means unknown). */
export const ENV = {
  state_dir: 'SUSTAIN_STATE_DIR',
  port: 'SUSTAIN_PORT',
  service_dir: 'SUSTAIN_SERVICE_DIR',
  service_name: 'SUSTAIN_SERVICE_NAME',
  fork_id: 'SUSTAIN_FORK_ID',
  fork_time_ms: 'SUSTAIN_FORK_TIME_MS',
  peer: 'SUSTAIN_PEER',
  peer_name: 'SUSTAIN_PEER_NAME',
  newest_snapshot_ms: 'SUSTAIN_NEWEST_SNAPSHOT_MS',
  all_online_ms: 'SUSTAIN_ALL_ONLINE_MS',
  split: 'SUSTAIN_SPLIT',
  control_socket: 'SUSTAIN_CONTROL_SOCKET',
  /** Set for a service started ahead of need (manifest `prestart`): the descriptor its start line comes on. */
  start_fd: 'SUSTAIN_START_FD',
} as const

export interface MergeEnvInput {
  fork_id: string | null
  fork_time_ms: number
  /** The other server's key (hex). */
  peer: string
  peer_name?: string | null
  control_socket?: string
}

/** The environment the node adds for `archive` and `merge`. */
export function mergeEnv(input: MergeEnvInput): Record<string, string> {
  if (!Number.isInteger(input.fork_time_ms) || input.fork_time_ms < 0) {
    throw new RangeError(`fork_time_ms must be a non-negative integer, got ${input.fork_time_ms}`)
  }
  return {
    [ENV.fork_id]: input.fork_id ?? '',
    [ENV.fork_time_ms]: String(input.fork_time_ms),
    [ENV.peer]: input.peer,
    [ENV.peer_name]: input.peer_name ?? '',
    ...(input.control_socket ? { [ENV.control_socket]: input.control_socket } : {}),
  }
}

export interface InfoEnvInput {
  newest_snapshot_ms: number | null
  all_online_ms: number | null
  split: boolean
  control_socket: string
}

/** The environment the node adds for `info`. */
export function infoEnv(input: InfoEnvInput): Record<string, string> {
  const ms = (value: number | null) => (value === null ? '' : String(Math.floor(value)))
  return {
    [ENV.newest_snapshot_ms]: ms(input.newest_snapshot_ms),
    [ENV.all_online_ms]: ms(input.all_online_ms),
    [ENV.split]: input.split ? '1' : '0',
    [ENV.control_socket]: input.control_socket,
  }
}

/** The arguments of `archive` and `merge`. */
export function sinceArgs(since_ms: number): string[] {
  return ['--since', String(Math.floor(since_ms))]
}
