import { render } from 'ink'
import { LiveUi } from './components/LiveUi.tsx'
import type { DemoFeed } from './demo-feed.ts'
import { runPlain } from './plain.ts'
import { colorEnabled, makeTheme } from './theme.ts'

export interface UiOptions {
  /** The node's control socket (`<data>/control.sock`); null when a demo feed attaches later. */
  socket_path: string | null
  demo?: DemoFeed
  title?: string
  stdout?: NodeJS.WriteStream
  stdin?: NodeJS.ReadStream
  env?: NodeJS.ProcessEnv
  /** Status refresh asked of the node (ms). */
  interval_ms?: number
  /** Closes the UI from outside (a demo that failed). */
  signal?: AbortSignal
}

/** Ink draws only the final frame when it believes it runs in CI (the `is-in-ci` rule it uses). */
function inCi(env: NodeJS.ProcessEnv): boolean {
  const set = (key: string) => key in env && env[key] !== '0' && env[key] !== 'false'
  return set('CI') || set('CONTINUOUS_INTEGRATION')
}

/** Whether the live screen can be drawn: a terminal on stdout and Ink willing to redraw. */
export function canDrawScreen(options: Pick<UiOptions, 'stdout' | 'env'> = {}): boolean {
  const stdout = options.stdout ?? process.stdout
  return stdout.isTTY === true && !inCi(options.env ?? process.env)
}

const ENTER_ALT_SCREEN = '\x1b[?1049h\x1b[H'
const LEAVE_ALT_SCREEN = '\x1b[?1049l'

/**
 * `sustain ui`: attach to the local node's control socket and show the federation live until `q`
 * (or Ctrl+C). On a terminal it draws a full screen (alternate buffer, restored on exit); otherwise
 * it prints timeline lines and status tables (until SIGINT/SIGTERM). Resolves when the user quits.
 */
export async function runUi(options: UiOptions): Promise<void> {
  const stdout = options.stdout ?? process.stdout
  const env = options.env ?? process.env
  let stop = () => {}
  const onSignal = () => stop()
  process.once('SIGINT', onSignal).once('SIGTERM', onSignal)
  options.signal?.addEventListener('abort', onSignal)
  try {
    if (!canDrawScreen({ stdout, env })) {
      if (options.socket_path === null) throw new Error('the plain text view needs a socket path')
      const plain = runPlain({ socket_path: options.socket_path, out: stdout })
      stop = () => plain.close()
      if (options.signal?.aborted) stop()
      await plain.done
      return
    }
    // Whatever ends the process (an exit elsewhere, a signal), the terminal gets its normal screen back.
    const leave = () => stdout.write(LEAVE_ALT_SCREEN)
    process.once('exit', leave)
    stdout.write(ENTER_ALT_SCREEN)
    try {
      const instance = render(
        <LiveUi
          socket_path={options.socket_path}
          theme={makeTheme(colorEnabled(env))}
          title={options.title ?? 'sustain ui'}
          {...(options.demo ? { demo: options.demo } : {})}
          {...(options.interval_ms ? { interval_ms: options.interval_ms } : {})}
        />,
        { stdout, ...(options.stdin ? { stdin: options.stdin } : {}), exitOnCtrlC: true },
      )
      stop = () => instance.unmount()
      if (options.signal?.aborted) stop()
      await instance.waitUntilExit()
    } finally {
      process.off('exit', leave)
      leave()
    }
  } finally {
    process.off('SIGINT', onSignal).off('SIGTERM', onSignal)
    options.signal?.removeEventListener('abort', onSignal)
  }
}
