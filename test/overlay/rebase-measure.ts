/**
 * Bytes appended to the server's core and downloaded by a candidate across rebases, per publish mode
 * (rebase-nodes.ts): `main` (what node.ts did before recipes), `resend` (the base moves, its image is
 * published again) and `recipes` (now). Not a test:
 *   bash test/loopback-only.sh npx tsx test/overlay/rebase-measure.ts [--mib 64] [--snapshots 12]
 *     [--chunk-kib 1024] [--pct 1] [--total-ratio 0.1] [--modes main,resend,recipes]
 */
import { randomBytes } from 'node:crypto'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { startTestnet } from '../../overlay/testnet.ts'
import { fileImageWriter } from '../../snapshot/atomic-file.ts'
import { changePages, seededBytes } from '../snapshot/helpers.ts'
import { withTimeout } from './harness.ts'
import { type PublishMode, RebaseNode } from './rebase-nodes.ts'

const { values } = parseArgs({
  options: {
    mib: { type: 'string', default: '64' },
    snapshots: { type: 'string', default: '12' },
    'chunk-kib': { type: 'string', default: '1024' },
    pct: { type: 'string', default: '1' },
    'total-ratio': { type: 'string', default: '0.1' },
    modes: { type: 'string', default: 'main,resend,recipes' },
  },
})
const MiB = 1024 * 1024
const image_bytes = Number(values.mib) * MiB
const snapshots = Number(values.snapshots)
const pages = Math.round(((image_bytes / 4096) * Number(values.pct)) / 100)

async function run(mode: PublishMode) {
  const testnet = await startTestnet(5)
  const dir = await mkdtemp(join(tmpdir(), 'sustain-rebase-measure-'))
  const secret = randomBytes(32)
  const setup = {
    dir,
    bootstrap: testnet.bootstrap,
    secret,
    keep: 2,
    chunk_bytes: Number(values['chunk-kib']) * 1024,
    rebase: { max_delta_ratio: 0.5, max_total_delta_ratio: Number(values['total-ratio']) },
    mode,
  }
  const server = await RebaseNode.start({ ...setup, name: 'server', seed: randomBytes(32) })
  const candidate = await RebaseNode.start({ ...setup, name: 'candidate', seed: randomBytes(32) })
  try {
    await candidate.count(server.key)
    let image = seededBytes(5, image_bytes)
    const rows: {
      seq: number
      rebased: boolean
      appended_bytes: number
      downloaded_bytes: number
      kept_bytes: number
    }[] = []
    let newest = ''
    for (let seq = 1; seq <= snapshots; seq++) {
      if (seq > 1) image = changePages(image, 1000 + seq, pages)
      const before = candidate.downloaded.get(server.key) ?? 0
      const taken = await server.take(image)
      await withTimeout(candidate.settled(taken.id), 300_000, `replicate ${taken.id}`)
      if (!candidate.held.has(taken.id)) throw candidate.failures.at(-1)?.error ?? new Error('not held')
      const downloaded_bytes = (candidate.downloaded.get(server.key) ?? 0) - before
      const kept_bytes = server.keptBytes()
      rows.push({
        seq,
        rebased: taken.rebased,
        appended_bytes: taken.appended_bytes,
        downloaded_bytes,
        kept_bytes,
      })
      newest = taken.id
    }
    const out = join(dir, 'restored.img')
    await candidate.store.restore(candidate.held.get(newest)!.engine_id, fileImageWriter(out))
    const identical = (await readFile(out)).equals(image)
    const after_first = rows.slice(1)
    const sum = (key: 'appended_bytes' | 'downloaded_bytes') => after_first.reduce((s, r) => s + r[key], 0)
    return {
      mode,
      rebases: rows.filter((r) => r.rebased).length,
      appended_after_first_mib: +(sum('appended_bytes') / MiB).toFixed(2),
      downloaded_after_first_mib: +(sum('downloaded_bytes') / MiB).toFixed(2),
      peak_kept_mib: +(Math.max(...rows.map((r) => r.kept_bytes)) / MiB).toFixed(2),
      restored_identical: identical,
      rows,
    }
  } finally {
    await candidate.close()
    await server.close()
    await testnet.destroy()
    await rm(dir, { recursive: true, force: true })
  }
}

const results = []
for (const mode of values.modes.split(',') as PublishMode[]) {
  const loadavg = (await readFile('/proc/loadavg', 'utf8')).split(' ').slice(0, 3).join(' ')
  const result = { ...(await run(mode)), loadavg }
  results.push(result)
  console.error(
    `${mode}: rebases ${result.rebases}, appended after first ${result.appended_after_first_mib} MiB, ` +
      `downloaded after first ${result.downloaded_after_first_mib} MiB, server core keeps at most ` +
      `${result.peak_kept_mib} MiB, identical ${result.restored_identical}`,
  )
  console.error(
    result.rows
      .map(
        (r) =>
          `  #${r.seq}${r.rebased ? ' rebase' : ''}: appended ${(r.appended_bytes / MiB).toFixed(2)} MiB, downloaded ${(r.downloaded_bytes / MiB).toFixed(2)} MiB, kept ${(r.kept_bytes / MiB).toFixed(2)} MiB`,
      )
      .join('\n'),
  )
}
console.log(JSON.stringify({ image_mib: image_bytes / MiB, pct: Number(values.pct), snapshots, results }))
