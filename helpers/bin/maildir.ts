/**
 * The built-in Maildir helper: `archive` and `merge` of a maildir (or a directory of them).
 *   MAILDIR_ROOT    the maildir, relative to $SUSTAIN_STATE_DIR (default `Maildir`) or absolute
 *   MERGE_SKEW_MS   clock skew tolerated between the two servers (default 60000)
 */
import { resolve } from 'node:path'
import { archiveMaildir, mergeMaildir } from '../maildir.ts'
import { defineHelper, type HelperContext } from '../sdk.ts'
import { skewMs } from './options.ts'

const root = (context: HelperContext) => resolve(context.state_dir, context.env['MAILDIR_ROOT'] || 'Maildir')

export const maildirHelper = defineHelper({
  async archive(context) {
    const stats = await archiveMaildir({
      root: root(context),
      since_ms: context.since_ms,
      skew_ms: skewMs(context),
      out: context.stdout,
    })
    context.log(`archive: ${stats.messages} messages, ${stats.names} names only`)
  },
  async merge(context) {
    const stats = await mergeMaildir({ root: root(context), input: context.stdin })
    context.log(`merge: ${stats.added} added, ${stats.flags_updated} flags updated, ${stats.present} present`)
  },
})

if (import.meta.url === `file://${process.argv[1]}`) maildirHelper.main()
