import { stat } from 'node:fs/promises'
import {
  applyDelta,
  createCodecPool,
  diffImages,
  nullImageWriter,
  type Progress,
  SnapshotError,
  SnapshotStore,
  verifyDeltaFile,
} from '../../../snapshot/index.ts'
import { CliError } from '../../util/cli-error.ts'

const MIB = 1024 * 1024

/** Percent and MiB/s on stderr: redrawn on a TTY, one line every few seconds otherwise. */
export function progressReporter(
  label: string,
  stream: NodeJS.WriteStream = process.stderr,
): { update: Progress; done(): void } {
  const started_ms = performance.now()
  let last_ms = 0
  const interval_ms = stream.isTTY ? 200 : 5000
  const line = (done_bytes: number, total_bytes: number | undefined) => {
    const seconds = (performance.now() - started_ms) / 1000
    const rate = seconds > 0 ? done_bytes / MIB / seconds : 0
    const share = total_bytes ? ` ${((100 * done_bytes) / total_bytes).toFixed(1)}%` : ''
    return `${label}:${share} ${(done_bytes / MIB).toFixed(1)} MiB ${rate.toFixed(1)} MiB/s`
  }
  let lastLine = ''
  return {
    update(done_bytes, total_bytes) {
      const now = performance.now()
      if (now - last_ms < interval_ms) return
      last_ms = now
      lastLine = line(done_bytes, total_bytes)
      stream.write(stream.isTTY ? `\r${lastLine}\x1b[K` : `${lastLine}\n`)
    },
    done() {
      if (stream.isTTY && lastLine) stream.write('\n')
    },
  }
}

async function mustExist(path: string, what: string): Promise<void> {
  await stat(path).catch(() => {
    throw new CliError(`${what} ${path}: no such file or directory`)
  })
}

/** Turn engine errors into messages for the operator; anything else is a bug and keeps its stack. */
async function asCliErrors<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn()
  } catch (error) {
    if (error instanceof SnapshotError) throw new CliError(error.message)
    const code = (error as NodeJS.ErrnoException).code
    if (code && (error as NodeJS.ErrnoException).path) throw new CliError((error as Error).message)
    throw error
  }
}

/** Write a delta file OUT that rebuilds NEW from BASE. */
export async function imageDiff(
  base: string,
  next: string,
  out: string,
  opts: { threads?: string },
): Promise<void> {
  await mustExist(base, 'base')
  await mustExist(next, 'new image')
  const pool = createCodecPool(opts.threads ? { threads: Number(opts.threads) } : {})
  const progress = progressReporter('diff')
  try {
    const result = await asCliErrors(() =>
      diffImages(base, next, out, { pool, on_progress: progress.update }),
    )
    progress.done()
    process.stdout.write(`${out}: ${result.delta_bytes} bytes\n`)
  } finally {
    await pool.close()
  }
}

/** Rebuild an image into OUT from BASE and a delta file, verifying every chunk. */
export async function imageApply(
  base: string,
  delta: string,
  out: string,
  opts: { threads?: string },
): Promise<void> {
  await mustExist(base, 'base')
  await mustExist(delta, 'delta file')
  const pool = createCodecPool(opts.threads ? { threads: Number(opts.threads) } : {})
  const progress = progressReporter('apply')
  try {
    await asCliErrors(() => applyDelta(base, delta, out, { pool, on_progress: progress.update }))
    progress.done()
  } finally {
    await pool.close()
  }
}

/** Check a delta file, or every snapshot of a store directory, chunk by chunk. */
export async function imageVerify(target: string, opts: { deep?: boolean }): Promise<void> {
  await mustExist(target, 'target')
  const pool = createCodecPool()
  try {
    const bad = (await stat(target)).isDirectory()
      ? await verifyStore(target, pool, opts.deep === true)
      : await verifyFile(target, pool)
    if (bad > 0) throw new CliError(`${target}: ${bad} problem(s) found`)
    process.stdout.write(`${target}: ok\n`)
  } finally {
    await pool.close()
  }
}

async function verifyFile(path: string, pool: ReturnType<typeof createCodecPool>): Promise<number> {
  const { problems } = await asCliErrors(() => verifyDeltaFile(path, pool))
  for (const p of problems)
    process.stdout.write(`${path}: part ${JSON.stringify(p.part)} chunk ${p.index}: ${p.detail}\n`)
  return problems.length
}

async function verifyStore(
  dir: string,
  pool: ReturnType<typeof createCodecPool>,
  deep: boolean,
): Promise<number> {
  const store = await SnapshotStore.open(dir, pool)
  let bad = store.skipped.length
  for (const s of store.skipped) process.stdout.write(`${dir}: manifest ${s.file}: ${s.reason}\n`)

  for (const info of store.listSnapshots()) {
    const report = await store.verify(info.id)
    for (const p of report.problems) {
      process.stdout.write(
        `snapshot ${info.id} part ${JSON.stringify(p.part)} chunk ${p.index}: ${p.problem}: ${p.detail}\n`,
      )
    }
    bad += report.problems.length
    if (deep && report.ok) {
      try {
        await store.restore(info.id, nullImageWriter(), progressReporter(`verify ${info.id}`).update)
      } catch (error) {
        if (!(error instanceof SnapshotError)) throw error
        process.stdout.write(`${error.message}\n`)
        bad++
      }
    }
    process.stdout.write(
      `snapshot ${info.id}: ${report.ok ? 'ok' : report.complete ? 'corrupt' : 'incomplete'}\n`,
    )
  }
  return bad
}
