import { CRC32C_LIBRARY, crc32cActive, crc32cUnavailable, withCrc32c } from '../native/crc32c-preload.ts'
import { HEAP_FLAGS, heapFlagsActive, withHeapFlags } from './heap-flags.ts'
import { MALLOC_TUNABLES, mallocTunablesActive, withMallocTunables } from './malloc-tunables.ts'

/**
 * Node's arguments and environment for a process that moves snapshot data: V8 heap flags, glibc malloc
 * settings and the hardware crc32c for RocksDB (why: in each module). `sustain demo`, the test harness
 * and the benchmark's tuned baseline start their node processes with these.
 */
export function forSnapshotTraffic(
  args: readonly string[] = [],
  env: NodeJS.ProcessEnv = process.env,
): { args: string[]; env: NodeJS.ProcessEnv } {
  return { args: withHeapFlags(args), env: withCrc32c(withMallocTunables(env)) }
}

export interface MissingSetting {
  /** What to give the process, as it would appear in a systemd unit. */
  fix: Record<string, string>
  why: string
}

function runsOnGlibc(): boolean {
  const header = (process.report.getReport() as { header?: { glibcVersionRuntime?: string } }).header
  return typeof header?.glibcVersionRuntime === 'string'
}

/** The settings this process started without, each with how to give it (README, Running nodes). */
export function missingSettings(): MissingSetting[] {
  const missing: MissingSetting[] = []
  if (!heapFlagsActive()) {
    missing.push({
      fix: { node_flags: HEAP_FLAGS.join(' ') },
      why: 'node started without the heap flags for snapshot traffic: ~20 % more CPU in garbage collection while replicating',
    })
  }
  // Reading the process report costs ~10 ms: only when the answer matters.
  if (!mallocTunablesActive() && runsOnGlibc()) {
    missing.push({
      fix: { GLIBC_TUNABLES: MALLOC_TUNABLES.join(':') },
      why: 'started without the malloc settings for snapshot traffic: replication costs ~25 % more CPU',
    })
  }
  if (!crc32cActive()) {
    const unavailable = crc32cUnavailable()
    missing.push({
      fix: unavailable === null ? { LD_PRELOAD: CRC32C_LIBRARY } : { crc32c: unavailable },
      why: 'RocksDB checksums with its software crc32c: ~13 % more CPU while replicating',
    })
  }
  return missing
}
