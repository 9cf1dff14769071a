/*
 * Hardware crc32c for the prebuilt rocksdb-native, loaded with LD_PRELOAD (src/native/crc32c-preload.ts).
 *
 * The prebuilt binary was compiled without SSE4.2, so RocksDB checksums its WAL, blob files and reads with
 * the table-driven software crc32c: ~13 % of all CPU while a writer replicated 256 MiB to 4 candidates
 * (perf). rocksdb-native exports rocksdb::crc32c::Extend and calls it through its PLT, so this definition,
 * preloaded, replaces it. Same function (CRC-32C, Castagnoli; RocksDB's Extend(crc, buf, size) returns the
 * crc of the data crc covered followed by buf), computed with the crc32 instruction: files written with
 * either implementation read with the other (test/native/crc32c.system.test.ts).
 * On a CPU without SSE4.2 it falls back to a table, as RocksDB itself would.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <nmmintrin.h>

#define CRC32C_POLY_REFLECTED 0x82f63b78u

static uint32_t table[256];
static int hardware;

__attribute__((constructor)) static void init(void) {
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = i;
    for (int k = 0; k < 8; k++) c = (c >> 1) ^ (CRC32C_POLY_REFLECTED & (0u - (c & 1u)));
    table[i] = c;
  }
  __builtin_cpu_init();
  hardware = __builtin_cpu_supports("sse4.2");
}

__attribute__((target("sse4.2"))) static uint32_t extend_hardware(uint32_t c, const char *buf, size_t size) {
  uint64_t c64 = c;
  while (size > 0 && ((uintptr_t)buf & 7) != 0) {
    c64 = _mm_crc32_u8((uint32_t)c64, (uint8_t)*buf++);
    size--;
  }
  while (size >= 8) {
    uint64_t word;
    memcpy(&word, buf, 8);
    c64 = _mm_crc32_u64(c64, word);
    buf += 8;
    size -= 8;
  }
  while (size > 0) {
    c64 = _mm_crc32_u8((uint32_t)c64, (uint8_t)*buf++);
    size--;
  }
  return (uint32_t)c64;
}

static uint32_t extend_table(uint32_t c, const char *buf, size_t size) {
  while (size-- > 0) c = table[(c ^ (uint8_t)*buf++) & 0xffu] ^ (c >> 8);
  return c;
}

/* rocksdb::crc32c::Extend(unsigned int, char const*, unsigned long) */
__attribute__((visibility("default"))) uint32_t _ZN7rocksdb6crc32c6ExtendEjPKcm(uint32_t crc, const char *buf, size_t size) {
  uint32_t c = crc ^ 0xffffffffu;
  c = hardware ? extend_hardware(c, buf, size) : extend_table(c, buf, size);
  return c ^ 0xffffffffu;
}
