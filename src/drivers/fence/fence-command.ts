import { spawn } from 'node:child_process'
import { constants } from 'node:fs'
import { access } from 'node:fs/promises'

/**
 * How a service is tied to its node, strongest first:
 * - `pid-namespace`: the service runs in a PID namespace whose init is a shell the node's death kills
 *   (setpriv --pdeathsig on unshare, unshare --kill-child on the init); when an init dies the kernel kills
 *   every process of its namespace, double-forked, setsid or namespaced again (Postfix's master) alike.
 * - `user-pid-namespace`: the same for a node not running as root, inside a user namespace that maps
 *   the node's user to itself (the service keeps its uid, gains no privilege outside).
 * - `pdeathsig`: user namespaces are not allowed: only the service's first process dies with the node;
 *   what it forked and detached survives until the node's next start reclaims it (reclaim.ts).
 * - `none`: util-linux is not installed (or the caller opted out): nothing dies with the node, and no
 *   lock keeps a second copy off the state directory.
 */
export type FenceMode = 'pid-namespace' | 'user-pid-namespace' | 'pdeathsig' | 'none'

export const SETPRIV = '/usr/bin/setpriv'
export const UNSHARE = '/usr/bin/unshare'
const FLOCK = '/usr/bin/flock'
/**
 * bash, not dash: dash vforks, and a vforking parent waits in state D until its child execs; a capture's
 * SIGSTOP landing in that window stops the child before its exec and the parent never shows stopped.
 */
const SHELL = '/bin/bash'
/** A shim's exit code when another run of the service holds the state directory's lock. */
export const STATE_IN_USE_EXIT = 75

const NAMESPACE_ARGS = ['--pid', '--fork', '--kill-child=SIGKILL']

/**
 * The shim takes the state directory's lock on fd 9 (inherited by the whole service: the lock is free
 * only once every process of the service is gone) and refuses to start a second copy. As a namespace's
 * init it runs the service as a child and waits (init ignores signals it has no handler for, so the
 * service, not the shim, receives the stop's SIGTERM; a waiting bash reaps the orphans it inherits); as
 * a plain process it execs, keeping the pdeathsig.
 */
function shim(init: boolean): string {
  const lock = `exec 9>>"$1" && flock -xn 9 || { echo "state directory in use: $1 is locked by a running copy of the service" >&2; exit ${STATE_IN_USE_EXIT}; }; shift;`
  return init ? `${lock} "$@"; exit $?` : `${lock} exec "$@"`
}

async function executable(path: string): Promise<boolean> {
  return access(path, constants.X_OK).then(
    () => true,
    () => false,
  )
}

/** Resolves true when `command` exits 0 (a probe of what this kernel allows). */
function succeeds(command: string, args: string[]): Promise<boolean> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { stdio: 'ignore' })
    child.once('error', () => resolve(false))
    child.once('exit', (code) => resolve(code === 0))
  })
}

let detected: Promise<FenceMode> | undefined

/** The strongest mode this machine allows (probed once per process). */
export function detectFenceMode(): Promise<FenceMode> {
  detected ??= (async (): Promise<FenceMode> => {
    if (!(await executable(SETPRIV)) || !(await executable(FLOCK))) return 'none'
    if (!(await executable(UNSHARE))) return 'pdeathsig'
    if (process.getuid?.() === 0) return 'pid-namespace'
    return (await succeeds(UNSHARE, ['--map-current-user', ...NAMESPACE_ARGS, 'true']))
      ? 'user-pid-namespace'
      : 'pdeathsig'
  })()
  return detected
}

/** The argv that runs `command args` under `mode`, holding `lock_path` (file and arguments for spawn). */
export function fencedArgv(
  mode: FenceMode,
  lock_path: string,
  command: string,
  args: readonly string[],
): [string, string[]] {
  const shell = (init: boolean) => [SHELL, '-c', shim(init), 'sustain-fence', lock_path, command, ...args]
  switch (mode) {
    case 'pid-namespace':
      return [SETPRIV, ['--pdeathsig', 'SIGKILL', '--', UNSHARE, ...NAMESPACE_ARGS, '--', ...shell(true)]]
    case 'user-pid-namespace':
      return [
        SETPRIV,
        [
          '--pdeathsig',
          'SIGKILL',
          '--',
          UNSHARE,
          '--map-current-user',
          ...NAMESPACE_ARGS,
          '--',
          ...shell(true),
        ],
      ]
    case 'pdeathsig':
      return [SETPRIV, ['--pdeathsig', 'SIGKILL', '--', ...shell(false)]]
    case 'none':
      return [command, [...args]]
  }
}
