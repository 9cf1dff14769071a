/**
 * The built-in mbox helper: `archive` and `merge` of a spool of mbox files (one file per mailbox).
 *   MBOX_SPOOL_DIR   the spool, relative to $SUSTAIN_STATE_DIR (default `mail`) or absolute
 *   MBOX_LOCK_DIR    where dotlocks live, relative to $SUSTAIN_STATE_DIR or absolute (default: next to
 *                    each mailbox, `<mbox>.lock`, as Postfix)
 *   MERGE_SKEW_MS    clock skew tolerated between the two servers (default 60000)
 * Run it as `node --import tsx helpers/bin/mbox.ts VERB ...`, or call it from a service's helper.
 */
import { resolve } from 'node:path'
import { archiveMboxSpool, mergeMboxSpool } from '../mbox/spool.ts'
import { defineHelper, type HelperContext } from '../sdk.ts'
import { skewMs } from './options.ts'

function spoolDir(context: HelperContext): string {
  return resolve(context.state_dir, context.env['MBOX_SPOOL_DIR'] || 'mail')
}

function lockDir(context: HelperContext): string | undefined {
  const dir = context.env['MBOX_LOCK_DIR']
  return dir ? resolve(context.state_dir, dir) : undefined
}

export const mboxHelper = defineHelper({
  async archive(context) {
    const stats = await archiveMboxSpool({
      spool_dir: spoolDir(context),
      since_ms: context.since_ms,
      skew_ms: skewMs(context),
      out: context.stdout,
      lock: { lock_dir: lockDir(context) },
    })
    context.log(
      `archive: ${stats.messages} messages (${stats.bytes} bytes) from ${stats.mailboxes} mailboxes`,
    )
  },
  async merge(context) {
    const stats = await mergeMboxSpool({
      spool_dir: spoolDir(context),
      input: context.stdin,
      lock: { lock_dir: lockDir(context) },
    })
    context.log(
      `merge: ${stats.added} added, ${stats.duplicates} already present, ${stats.mailboxes} mailboxes`,
    )
  },
})

if (import.meta.url === `file://${process.argv[1]}`) mboxHelper.main()
