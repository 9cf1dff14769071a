import { DEFAULT_SKEW_MS } from '../mbox/spool.ts'
import { EXIT_BAD_ARGS } from '../protocol.ts'
import { type HelperContext, HelperFailure } from '../sdk.ts'

/** MERGE_SKEW_MS: the clock skew the built-in helpers tolerate between the two servers. */
export function skewMs(context: HelperContext): number {
  const text = context.env['MERGE_SKEW_MS']
  if (text === undefined || text === '') return DEFAULT_SKEW_MS
  if (!/^\d+$/.test(text))
    throw new HelperFailure(`MERGE_SKEW_MS must be an integer of ms, got ${text}`, EXIT_BAD_ARGS)
  return Number(text)
}
