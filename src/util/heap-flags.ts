/**
 * V8 flags for a node process that moves snapshot data. Each MiB received or sent is a fresh Buffer
 * outside V8's heap; every 64 MB of them V8 collects the young generation, and with its defaults a
 * ~12 MB old generation then sits exactly at the limit where V8 also starts a full collection, so a node
 * replicating did a major GC every ~100 ms (the trace says "external memory pressure", then "allocation
 * limit", 16 MB slack against a 16 MB young generation). A 128 MB initial old-generation limit leaves room:
 * replicating 256 MiB to 4 candidates (lane window already in place, paired runs), major GCs fell from up to
 * 28 per candidate to 0-1 and from 49-65 on the writer to 8-19, and CPU per MiB delivered from
 * 16.9-21.9 to 13.5-15.1 ms.
 * V8 reads the flag only at start (and refuses it in NODE_OPTIONS), so it goes on the command line of
 * the processes we start; bin/sustain.js carries it in its shebang.
 */
export const HEAP_FLAGS: readonly string[] = ['--initial-old-space-size=128']

function name(flag: string): string {
  return flag.split('=')[0]!.replaceAll('_', '-')
}

/** `args` (node's own arguments) with the heap flags put first; a flag already given wins. */
export function withHeapFlags(args: readonly string[] = []): string[] {
  const given = new Set(args.map(name))
  return [...HEAP_FLAGS.filter((flag) => !given.has(name(flag))), ...args]
}

/** Whether node started with the heap flags (or its operator's own values for them). */
export function heapFlagsActive(execArgv: readonly string[] = process.execArgv): boolean {
  const given = new Set(execArgv.map(name))
  return HEAP_FLAGS.every((flag) => given.has(name(flag)))
}
