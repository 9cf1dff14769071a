import { type DemoOptions, type DemoSummary, runDemo } from '../demo/demo.ts'
import { CliError } from '../util/cli-error.ts'
import { DemoFeed } from './demo-feed.ts'
import { runUi } from './run-ui.tsx'

/**
 * `sustain demo` on a terminal: the scenario runs while the UI watches a node that survives the kill,
 * with the narration in its own panel. The UI stays on the final view until `q`; Ctrl+C during the
 * scenario stops the node processes and ends with exit code 130. Returns the demo's summary and the
 * narration (printed after the screen closes, so it stays in the terminal's scrollback).
 */
export async function runDemoInUi(
  options: Omit<DemoOptions, 'say' | 'onEvent'>,
): Promise<{ summary: DemoSummary; narration: string[] }> {
  const feed = new DemoFeed()
  const close_ui = new AbortController()
  const federation: { stop: (() => Promise<void>) | null } = { stop: null }
  // The scenario reports its end before runDemo returns (it still stops the processes): a `q` pressed
  // after that is a normal end, not an interruption.
  let finished = false
  const ui = runUi({ socket_path: null, demo: feed, title: 'sustain demo', signal: close_ui.signal })
  const demo = runDemo({
    ...options,
    say: feed.say,
    onEvent: (event) => {
      if (event.kind === 'started') federation.stop = event.stop
      else if (event.kind === 'attach') feed.attach(event.socket_path, event.node)
      else {
        finished = true
        feed.finish(`scenario over: ${event.summary.killed} killed, ${event.summary.new_server} serves`)
      }
    },
  })
  let outcome: { summary: DemoSummary } | { quit: true }
  try {
    outcome = await Promise.race([
      demo.then((summary) => ({ summary })),
      ui.then(() => ({ quit: true as const })),
    ])
  } catch (error) {
    close_ui.abort()
    await ui
    throw error
  }
  if ('quit' in outcome && finished) return { summary: await demo, narration: feed.lines }
  if ('quit' in outcome) {
    demo.catch(() => {}) // its waits fail once the nodes are gone; the process exits first
    await federation.stop?.()
    throw new CliError('demo interrupted; its node processes were stopped', 130)
  }
  await ui
  return { summary: outcome.summary, narration: feed.lines }
}
