/**
 * A corrupted block on one holder (issue 20): bytes flipped in a stored snapshot blob of the candidate
 * that will be elected, then the server killed. The restore must refuse the blob by its hash and serve
 * correct data (from another holder, or an older snapshot) or say so; the checker judges the mail.
 */
import { readdir, readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { nodePaths } from '../../src/runtime/paths.ts'
import { type Nemesis, others } from './nemeses.ts'
import { nextRecord } from './nemeses-process.ts'

/** The most recently written blob of a snapshot store (`blobs/ab/<hash>`), or null when it has none. */
async function newestBlob(store: string): Promise<string | null> {
  let newest: { path: string; mtime_ms: number } | null = null
  const root = join(store, 'blobs')
  for (const prefix of await readdir(root).catch(() => [])) {
    for (const name of await readdir(join(root, prefix)).catch(() => [])) {
      if (name.endsWith('.tmp')) continue
      const path = join(root, prefix, name)
      const info = await stat(path).catch(() => null)
      if (info !== null && info.size > 0 && (newest === null || info.mtimeMs > newest.mtime_ms))
        newest = { path, mtime_ms: info.mtimeMs }
    }
  }
  return newest?.path ?? null
}

export const corruptBlock: Nemesis = {
  name: 'corrupt-block',
  async run(ctx, server) {
    // The heir: the running candidate of the highest priority (priority falls with the index).
    const heir = ctx.nodes[Math.min(...others(ctx, server).filter((i) => ctx.nodes[i]!.running))]!
    // Right after the federation formed the heir may hold no blob yet: a few more snapshots (bounded).
    let collected: Awaited<ReturnType<typeof nextRecord>> = null
    let blob: string | null = null
    for (let i = 0; i < 10 && blob === null; i++) {
      collected = await nextRecord([heir], (r) => r.event === 'snapshot_collected', 30_000)
      blob = await newestBlob(nodePaths(heir.data_dir).snapshots)
    }
    if (blob === null) throw new Error(`n${heir.index} holds no snapshot blob to corrupt`)
    const bytes = await readFile(blob)
    const flips = Math.min(8, bytes.length)
    const offsets = Array.from({ length: flips }, () => ctx.rng.int(0, bytes.length - 1))
    for (const at of offsets) bytes[at] = bytes[at]! ^ 0xff
    await writeFile(blob, bytes) // in place, not atomically: the damage a bad disk does
    const server_node = ctx.nodes[server]!
    const fault_t = Date.now()
    server_node.signal('SIGKILL')
    ctx.note(
      `n${heir.index}: ${flips} bytes flipped in ${blob.split('/').at(-1)!.slice(0, 12)}... (${bytes.length} bytes; after collecting ${String(collected?.record['id'] ?? 'nothing new')}); SIGKILL n${server}`,
    )
    await ctx.sleep(ctx.hold_ms)
    await server_node.waitExit(10_000)
    server_node.start()
    ctx.note(`n${server} restarted with its data directory`)
    return {
      fault_t,
      heal_t: Date.now(),
      touched: others(ctx, server),
      pure_partition: false,
      params: { corrupted_on: `n${heir.index}`, blob_bytes: bytes.length },
    }
  },
}
