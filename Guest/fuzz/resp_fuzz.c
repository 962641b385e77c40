/*
 * resp_fuzz.c — libFuzzer target for kvstore's RESP parser (resp.c).
 *
 * The input is a byte stream from one client. It is parsed twice, the way
 * the guest's event loop does it (main.c's run_requests / on_data):
 *   1. as one message;
 *   2. split into messages at points chosen from the input's first bytes,
 *      parsing straight from each "ring" message while no partial request is
 *      buffered, otherwise appending to a connection buffer.
 * Invariants:
 *   - every argument lies inside the bytes the parser was given (ASan checks
 *     the bounds; we check the pointers too), `used` never exceeds them,
 *     progress is always made;
 *   - both runs produce the same requests, replies to errors and leftover,
 *     except that a split run may hit a "too big" error earlier than the
 *     single message (Redis behaves the same way: it depends on how much has
 *     been read); then its requests before that are a prefix of the other's.
 */
#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host_shim.h"
#include "resp.h"

struct events {
  uint64_t *digest; /* cumulative digest after each event */
  size_t n, cap;
  int too_big;      /* the last event is a "too big" error */
  size_t leftover;  /* bytes of a partial request at the end */
};

static void add_event(struct events *ev, uint64_t h) {
  uint64_t prev = ev->n ? ev->digest[ev->n - 1] : 0x1234;
  if (ev->n == ev->cap) {
    ev->cap = ev->cap ? ev->cap * 2 : 64;
    ev->digest = realloc(ev->digest, ev->cap * sizeof *ev->digest);
    assert(ev->digest);
  }
  ev->digest[ev->n++] = kv_hash(&h, sizeof h, prev);
}

static uint64_t command_digest(const struct resp_parser *p) {
  uint64_t h = 0xc0ffee ^ p->argc;
  for (size_t i = 0; i < p->argc; i++) {
    h = kv_hash(p->argv[i].ptr, p->argv[i].len, h);
    h = kv_hash(&p->argv[i].len, sizeof p->argv[i].len, h);
  }
  return h;
}

static int in_range(const ls_u8 *p, size_t n, const ls_u8 *lo, size_t len) {
  return p >= lo && n <= len && (size_t)(p - lo) <= len - n;
}

/* One connection: returns -1 once closed by an error. */
struct conn {
  struct resp_parser parser;
  ls_u8 *buf;
  size_t len, cap;
  int closed;
};

static long long run(struct conn *c, struct events *ev, const ls_u8 *base, size_t len) {
  size_t off = 0;
  while (off < len) {
    size_t need = resp_need(&c->parser);
    if (need && len - off < need) break;
    size_t used = 12345;
    int r = resp_parse(&c->parser, base + off, len - off, &used);
    switch (r) {
    case RESP_COMMAND:
      assert(used > 0 && used <= len - off);
      assert(c->parser.argc > 0);
      for (size_t i = 0; i < c->parser.argc; i++) {
        const struct kv_arg *a = &c->parser.argv[i];
        assert(in_range(a->ptr, a->len, base + off, used) ||
               (c->parser.scratch && in_range(a->ptr, a->len, c->parser.scratch, c->parser.scratch_cap)));
      }
      add_event(ev, command_digest(&c->parser));
      resp_reset(&c->parser);
      off += used;
      break;
    case RESP_EMPTY:
      assert(used > 0 && used <= len - off);
      add_event(ev, 0xe);
      resp_reset(&c->parser);
      off += used;
      break;
    case RESP_INCOMPLETE:
      assert(used == 0);
      return (long long)off;
    case RESP_ERROR:
      assert(c->parser.error[0]);
      add_event(ev, kv_hash(c->parser.error, strlen(c->parser.error), 0xbad));
      ev->too_big = strstr(c->parser.error, "too big") != 0;
      return -1;
    case RESP_NOMEM:
      abort(); /* no failure injection in this target */
    default:
      abort();
    }
  }
  return (long long)off;
}

static void feed(struct conn *c, struct events *ev, const ls_u8 *data, size_t n) {
  if (c->closed) return;
  long long used;
  if (c->len == 0) {
    /* Zero-copy path: parse the message in place. Use a private copy of
     * exactly n bytes so that ASan catches any read past the message. */
    ls_u8 *msg = malloc(n ? n : 1);
    memcpy(msg, data, n);
    used = run(c, ev, msg, n);
    if (used >= 0 && (size_t)used < n) {
      size_t rest = n - (size_t)used;
      c->cap = rest;
      c->buf = realloc(c->buf, c->cap);
      memcpy(c->buf, msg + used, rest);
      c->len = rest;
    }
    free(msg);
  } else {
    if (c->len + n > c->cap) {
      c->cap = (c->len + n) * 2;
      c->buf = realloc(c->buf, c->cap);
      assert(c->buf);
    }
    memcpy(c->buf + c->len, data, n);
    c->len += n;
    used = run(c, ev, c->buf, c->len);
    if (used > 0) {
      memmove(c->buf, c->buf + used, c->len - (size_t)used);
      c->len -= (size_t)used;
    }
  }
  if (used < 0) c->closed = 1;
}

static void finish(struct conn *c, struct events *ev) {
  ev->leftover = c->closed ? 0 : c->len;
  resp_free(&c->parser);
  free(c->buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2) return 0;
  /* The first two bytes choose the split pattern. */
  unsigned seed = data[0] | (unsigned)data[1] << 8;
  data += 2;
  size -= 2;
  /* A second byte of 0x7f: append 66 KiB of the byte given by the first
   * one, to reach the 64 KiB "too big" limits with small inputs. */
  uint8_t *big = 0;
  if ((seed >> 8) == 0x7f) {
    size_t fill = 66 * 1024;
    big = malloc(size + fill);
    memcpy(big, data, size);
    memset(big + size, seed & 0xff, fill);
    data = big;
    size += fill;
  }

  struct events whole = {0}, split = {0};
  struct conn a = {0}, b = {0};
  resp_init(&a.parser);
  resp_init(&b.parser);

  feed(&a, &whole, data, size);
  finish(&a, &whole);

  unsigned long long rng = seed * 2654435761u + 1;
  size_t off = 0;
  while (off < size) {
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    size_t max = big ? 8192 : (seed & 0x8000) ? 4096 : 16;
    size_t chunk = 1 + (size_t)((rng >> 33) % max);
    if (chunk > size - off) chunk = size - off;
    feed(&b, &split, data + off, chunk);
    off += chunk;
  }
  finish(&b, &split);

  if (split.n == whole.n && !split.too_big) {
    assert(split.n == 0 || memcmp(split.digest, whole.digest, split.n * sizeof *split.digest) == 0);
    assert(split.leftover == whole.leftover);
  } else {
    /* Only an earlier "too big" error may differ. */
    assert(split.too_big);
    assert(split.n >= 1 && split.n - 1 <= whole.n);
    assert(split.n == 1 || memcmp(split.digest, whole.digest, (split.n - 1) * sizeof *split.digest) == 0);
  }
  free(whole.digest);
  free(split.digest);
  free(big);
  return 0;
}
