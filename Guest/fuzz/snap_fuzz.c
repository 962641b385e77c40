/*
 * snap_fuzz.c — libFuzzer target for kvstore's snapshot loader
 * (snapshot.c). The input is the data region of a snapshot; the harness
 * writes a header with valid checksums in front of it (so the fuzzer
 * reaches the record parser) and loads it with allocation failures
 * injected at a rate chosen by the first byte.
 * Invariants: no crash, no memory error, no leak; a failed load leaves an
 * empty store; a successful one leaves a consistent store that saves and
 * loads back identically.
 */
#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host_shim.h"
#include "kv.h"
#include "snapshot.h"

static ls_u8 *disk;
static size_t disk_size;

static int d_read(void *ctx, ls_u64 off, void *buf, size_t len) {
  (void)ctx;
  assert(off % 512 == 0 && len % 512 == 0 && off + len <= disk_size);
  memcpy(buf, disk + off, len);
  return 0;
}
static int d_write(void *ctx, ls_u64 off, const void *buf, size_t len) {
  (void)ctx;
  assert(off % 512 == 0 && len % 512 == 0 && off + len <= disk_size);
  memcpy(disk + off, buf, len);
  return 0;
}
static int d_flush(void *ctx) {
  (void)ctx;
  return 0;
}

static void put64(ls_u8 *p, ls_u64 v) {
  for (int i = 0; i < 8; i++) p[i] = (ls_u8)(v >> (8 * i));
}

static int count_visit(void *ctx, struct kv_entry *e) {
  (void)e;
  (*(size_t *)ctx)++;
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  unsigned rate = data[0] < 0xc0 ? 0 : (data[0] - 0xc0);
  data++;
  size--;
  disk_size = 4096 + ((size + 511) / 512 * 512) + 4096;
  disk = calloc(1, disk_size);
  memcpy(disk + 4096, data, size);
  /* A valid header for these bytes. */
  ls_u8 *h = disk;
  memcpy(h, KV_SNAP_MAGIC, 8);
  h[8] = KV_SNAP_VERSION;
  h[12] = 64;
  put64(h + 16, 4096);
  put64(h + 24, size);
  /* The key count: as many records as the data might hold. */
  put64(h + 32, size < 2 ? 1 : data[size - 1] % 8 + 1);
  ls_u64 sum = KV_SNAP_SEED;
  for (size_t off = 0; off < size; off += KV_SNAP_CHUNK)
    sum = kv_hash(data + off, size - off < KV_SNAP_CHUNK ? size - off : KV_SNAP_CHUNK, sum);
  put64(h + 40, sum);
  put64(h + 48, 1700000000000ull);
  put64(h + 56, kv_hash(h, 56, KV_SNAP_SEED));

  kv_now_ms = 1700000000000ll;
  kv_store_init(42);
  kv_snap_current.offset = kv_snap_current.length = 0;
  struct kv_snap_io io = {d_read, d_write, d_flush, 0, disk_size};
  kv_host_seed(size);
  kv_host_fail_rate = rate;
  ls_u64 keys;
  char why[96];
  int r = kv_snapshot_load(&io, &keys, why, sizeof why);
  kv_host_fail_rate = 0;
  if (getenv("SNAP_FUZZ_TRACE")) fprintf(stderr, "load: %s, keys=%llu\n", r ? why : "ok", (unsigned long long)keys);
  size_t n = 0;
  kv_foreach(count_visit, &n);
  if (r != 0) {
    assert(n == 0 && kv_size() == 0 && kv_expires() == 0);
  } else {
    assert(n == kv_size() && n == keys);
    /* Save it again (to a fresh area) and load that back. */
    const char *err = kv_snapshot_save(&io);
    if (!err) {
      kv_flush_all();
      ls_u64 again;
      assert(kv_snapshot_load(&io, &again, why, sizeof why) == 0 && again == keys);
    }
  }
  kv_flush_all();
  free(disk);
  return 0;
}
