/*
 * host_shim.c — what the kvstore sources need from their environment when
 * built on the host for fuzzing: the allocator seam (with fault injection)
 * and the memory gauge.
 */
#include <stdlib.h>

#include "kv.h"
#include "host_shim.h"

unsigned kv_host_fail_rate; /* out of 256; 0 = allocations never fail */
static unsigned long long rng = 1;

void kv_host_seed(unsigned long long seed) { rng = seed | 1; }

static int should_fail(void) {
  if (!kv_host_fail_rate) return 0;
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return (rng & 255) < kv_host_fail_rate;
}

void *kv_malloc(size_t n) {
  if (should_fail()) return 0;
  return malloc(n ? n : 1);
}

void kv_free(void *p) { free(p); }

void *kv_realloc(void *p, size_t n) {
  if (should_fail()) return 0;
  return realloc(p, n ? n : 1);
}

size_t kv_used_memory(void) { return 0; }
