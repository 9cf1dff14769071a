/**
 * Last words of a node process: on a signal it can catch (SIGTERM, SIGINT, SIGHUP) or an uncaught
 * error, peers must hear that it goes before its connections do, so they act on an event instead of
 * waiting for silence. The caller says what to send (`speak`, bounded by its own flush) and how to stop.
 */

export const LAST_WORDS_SIGNALS = ['SIGTERM', 'SIGINT', 'SIGHUP'] as const
export type LastWordsSignal = (typeof LAST_WORDS_SIGNALS)[number]

/** An uncaught error exits after this long even if the last words never finish. */
export const FATAL_EXIT_MS = 500

export interface LastWordsHooks {
  /** Send the last words; resolves when they were acknowledged or their bounded wait ended. */
  speak: (reason: string) => Promise<unknown>
  /** After a signal: close in order (the process ends when the caller's run ends). */
  stop: (signal: LastWordsSignal) => void
  /** Logs the uncaught error before the process exits with status 1. */
  fatal: (error: unknown, origin: string) => void
}

/**
 * Installs the handlers; returns their removal. A signal speaks, then stops; an uncaught error (or an
 * unhandled rejection, which Node raises as one) speaks and exits 1 within FATAL_EXIT_MS whatever
 * happens: state after an uncaught error is not trusted to close in order.
 */
export function installLastWords(hooks: LastWordsHooks): () => void {
  const onSignal = (signal: LastWordsSignal) => {
    void hooks.speak(signal).finally(() => hooks.stop(signal))
  }
  const onFatal = (error: unknown, origin: string) => {
    hooks.fatal(error, origin)
    setTimeout(() => process.exit(1), FATAL_EXIT_MS).unref()
    void Promise.resolve()
      .then(() => hooks.speak(`uncaught error: ${(error as Error)?.message ?? String(error)}`))
      .catch(() => {})
      .finally(() => process.exit(1))
  }
  const handlers = LAST_WORDS_SIGNALS.map((signal) => [signal, () => onSignal(signal)] as const)
  for (const [signal, handler] of handlers) process.once(signal, handler)
  process.on('uncaughtException', onFatal)
  return () => {
    for (const [signal, handler] of handlers) process.off(signal, handler)
    process.off('uncaughtException', onFatal)
  }
}
