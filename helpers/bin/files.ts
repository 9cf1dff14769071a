/**
 * The built-in generic helper: union of files, last writer wins by mtime, conflicts kept renamed.
 *   FILES_ROOT      the directory, relative to $SUSTAIN_STATE_DIR (default `.`, the whole state) or absolute
 *   MERGE_SKEW_MS   clock skew tolerated between the two servers (default 60000)
 */
import { resolve } from 'node:path'
import { archiveFiles, mergeFiles } from '../files.ts'
import { defineHelper, type HelperContext } from '../sdk.ts'
import { skewMs } from './options.ts'

const root = (context: HelperContext) => resolve(context.state_dir, context.env['FILES_ROOT'] || '.')

export const filesHelper = defineHelper({
  async archive(context) {
    const stats = await archiveFiles({
      root: root(context),
      since_ms: context.since_ms,
      skew_ms: skewMs(context),
      out: context.stdout,
    })
    context.log(`archive: ${stats.files} files (${stats.bytes} bytes)`)
  },
  async merge(context) {
    const stats = await mergeFiles({
      root: root(context),
      input: context.stdin,
      since_ms: context.since_ms,
      skew_ms: skewMs(context),
      peer_label: context.peer_name || context.peer?.slice(0, 16) || 'peer',
    })
    context.log(
      `merge: ${stats.added} added, ${stats.replaced} replaced, ${stats.conflicts} conflicts, ${stats.unchanged} unchanged`,
    )
  },
})

if (import.meta.url === `file://${process.argv[1]}`) filesHelper.main()
