import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { requireTools } from '../system/requirements.ts'

const run = promisify(execFile)
export const BIN = new URL('../../bin/sustain.js', import.meta.url).pathname
/** Our own tmux server (its own socket name), so nothing else's sessions are touched. */
const TMUX_SERVER = `sustain-ui-test-${process.pid}`

/** Ink draws only a final frame under CI; the pane must look like a person's terminal. */
export const TERMINAL_ENV =
  'env -u CI -u CONTINUOUS_INTEGRATION -u NO_COLOR -u FORCE_COLOR TERM=xterm-256color'
export const SESSION = 'ui'

export function tmux(...args: string[]) {
  requireTools('tmux')
  return run('tmux', ['-L', TMUX_SERVER, ...args], { timeout: 10_000 })
}

export async function screen(): Promise<string> {
  const { stdout } = await tmux('capture-pane', '-p', '-t', SESSION)
  return stdout
}

/** The pane with its scrollback, wrapped lines joined (long output such as a JSON line, whole). */
export async function scrollback(lines = 500): Promise<string> {
  const { stdout } = await tmux('capture-pane', '-p', '-J', '-S', `-${lines}`, '-t', SESSION)
  return stdout
}

/**
 * Reads the pane until `match` holds: observing a screen has no event to wait on, so this polls,
 * every 200 ms, within a bound.
 */
export async function screenWhere(
  match: (text: string) => boolean,
  what: string,
  timeout_ms = 45_000,
): Promise<string> {
  const deadline = Date.now() + timeout_ms
  let text = ''
  for (let i = 0; i < 1000 && Date.now() < deadline; i++) {
    text = await screen()
    if (match(text)) return text
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
  throw new Error(`screen never showed ${what} within ${timeout_ms} ms; last screen:\n${text}`)
}
