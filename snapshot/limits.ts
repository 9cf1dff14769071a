/**
 * xdelta3-wasm runs in a fixed 16 MiB heap: one call with inputs above 1 MiB fails with ENOMEM
 * (measured: exactly 1 MiB works, 1 MiB + 100 bytes does not). Chunks are therefore at most 1 MiB.
 * Even within 1 MiB a chunk of many short matches runs out (see codec.ts): such a chunk is stored raw.
 */
export const MAX_CHUNK_BYTES = 1 << 20

export const DEFAULT_CHUNK_BYTES = MAX_CHUNK_BYTES

/** Unit of change detection inside a chunk: a memory page. */
export const PAGE_BYTES = 4096
