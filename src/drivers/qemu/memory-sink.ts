import { access, readFile } from 'node:fs/promises'
import { performance } from 'node:perf_hooks'
import { shellQuote } from '../ssh-helper.ts'

/** How long the sink may take to write its last bytes after QEMU reported the migration completed. */
const SINK_SETTLE_TIMEOUT_MS = 60_000
const SINK_POLL_MS = 5

/**
 * The `migrate` URI that writes QEMU's memory stream to `path`. The writer runs in the background of
 * the command QEMU spawns, for two reasons measured here with QEMU 7.2:
 * - QEMU closes its command channel as soon as the migration completes and SIGTERMs, then SIGKILLs, the
 *   command if it has not exited 10 ms later: a plain `cat > FILE` can be cut before its last bytes.
 *   Detached, the writer reads to the end; the file appears (renamed from `.part`) once it is whole.
 * - If the reader of a background snapshot fails (a write error such as a full disk, or the process
 *   killed), QEMU's migration fails while guest memory is still write-protected; a device writing guest
 *   memory from QEMU's main loop (a virtio-blk completion) then blocks on that protection, and the
 *   cleanup that would lift it is scheduled on the same main loop: QEMU hangs. So a failed write is
 *   recorded in `.failed` and the rest of the stream is drained, and the migration completes.
 */
export function memorySinkUri(path: string): string {
  const file = shellQuote(path)
  const part = shellQuote(`${path}.part`)
  const failed = shellQuote(`${path}.failed`)
  // A background list's stdin is /dev/null in a shell without job control: the stream goes by fd 3.
  return `exec:exec 3<&0; (cat <&3 > ${part} && mv ${part} ${file} || { echo "$?" > ${failed}; exec cat <&3 > /dev/null; }) &`
}

/** Waits until the sink has written the whole stream; throws if it could not. */
export async function awaitMemoryFile(path: string, timeout_ms = SINK_SETTLE_TIMEOUT_MS): Promise<void> {
  const deadline = performance.now() + timeout_ms
  for (;;) {
    if (await exists(path)) return
    const failed = await readFile(`${path}.failed`, 'utf8').catch(() => undefined)
    if (failed !== undefined)
      throw new Error(
        `the memory stream could not be written (the writer exited ${failed.trim() || '?'}): disk full, or it was killed`,
      )
    if (performance.now() > deadline)
      throw new Error(`the memory stream was not written out within ${timeout_ms} ms of the migration's end`)
    await new Promise((ok) => setTimeout(ok, SINK_POLL_MS))
  }
}

function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  )
}
