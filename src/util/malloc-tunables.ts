/**
 * glibc malloc settings for a node process. Snapshot data moves in 1 MiB blocks and up to 8 MiB frames;
 * with glibc's defaults many such buffers land in memory just mapped (above the mmap threshold, or heap
 * that was trimmed after the last GC, or a thread's own arena), so each 4 KiB page faults in again on
 * first touch. Profiled replicating 256 MiB to one candidate, those faults were about a sixth of all CPU;
 * with these settings the writer's CPU per MiB fell ~25 %, replication to one candidate rose ~68 -> ~86
 * MB/s in paired runs, and a candidate's peak RSS fell ~410 -> ~330 MiB (bench/RESULTS.md).
 * glibc reads them only at process start (GLIBC_TUNABLES), so they go into the environment of the
 * processes we start; an operator starting `sustain join` sets them in its unit (README).
 */
export const MALLOC_TUNABLES = [
  // Allocations below 32 MiB come from the heap, whose pages stay mapped...
  'glibc.malloc.mmap_threshold=33554432',
  // ...and up to 64 MiB of free heap top is kept rather than handed back to the kernel...
  'glibc.malloc.trim_threshold=67108864',
  // ...in at most two arenas: RocksDB's threads allocated in arenas of their own, faulting there too.
  'glibc.malloc.arena_max=2',
]

/** Names of the tunables in a GLIBC_TUNABLES value ("name=value:name=value"). */
function names(tunables: readonly string[]): Set<string> {
  return new Set(tunables.map((t) => t.slice(0, t.indexOf('='))))
}

function present(env: NodeJS.ProcessEnv): string[] {
  return (env['GLIBC_TUNABLES'] ?? '').split(':').filter((t) => t.includes('='))
}

/**
 * `env` with MALLOC_TUNABLES added to its GLIBC_TUNABLES. Tunables already there win: an operator's
 * own malloc settings are kept, and so are unrelated ones.
 */
export function withMallocTunables(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const own = present(env)
  const set = names(own)
  const added = MALLOC_TUNABLES.filter((t) => !set.has(t.slice(0, t.indexOf('='))))
  return { ...env, GLIBC_TUNABLES: [...own, ...added].join(':') }
}

/** Whether this process started with the malloc settings (or its operator's own values for them). */
export function mallocTunablesActive(env: NodeJS.ProcessEnv = process.env): boolean {
  const set = names(present(env))
  return [...names(MALLOC_TUNABLES)].every((name) => set.has(name))
}
