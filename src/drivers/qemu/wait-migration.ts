import { performance } from 'node:perf_hooks'
import type { QmpClient } from './qmp.ts'

const MIGRATE_TIMEOUT_MS = 600_000
/** First polls close together (a stopped guest's stream takes ~0.5 s); a background one takes seconds. */
const FIRST_POLL_MS = 5
const MAX_POLL_MS = 50

/** Polls `query-migrate` until the migration completed; throws with QEMU's reason when it failed. */
export async function waitMigration(qmp: QmpClient, timeout_ms = MIGRATE_TIMEOUT_MS): Promise<void> {
  const deadline = performance.now() + timeout_ms
  for (let poll_ms = FIRST_POLL_MS; ; poll_ms = Math.min(MAX_POLL_MS, poll_ms * 1.2)) {
    const info = await qmp.execute<{ status?: string; 'error-desc'?: string }>('query-migrate')
    if (info.status === 'completed') return
    if (info.status === 'failed' || info.status === 'cancelled')
      throw new Error(`migration ${info.status}: ${info['error-desc'] ?? 'no reason given'}`)
    if (performance.now() > deadline) {
      await qmp.execute('migrate_cancel').catch(() => {})
      throw new Error(`migration not completed in ${timeout_ms} ms`)
    }
    await new Promise((ok) => setTimeout(ok, poll_ms))
  }
}
