/*
 * kv_fuzz.c — libFuzzer target for kvstore's command layer and store
 * (commands.c, store.c, reply.c, util.c, snapshot.c) on the host, with a
 * fake clock and allocation-failure injection.
 *
 * The input is a little program. An op byte below 0xf0 runs a command: its
 * name from the table below, then a byte for the argument count, then per
 * argument a byte choosing it from pools of keys, numbers and option words
 * (or, from 0xe0, that many pairs of raw bytes from the input). Op bytes
 * from 0xf0 move the clock, run active expiry or rehashing, turn allocation
 * failures on or off, or save a snapshot to a memory disk and load it back.
 * Invariants:
 *   - every command produces exactly one well-formed RESP2 reply;
 *   - the store's bookkeeping agrees with a walk over it (key count, expiry
 *     index, list and hash lengths);
 *   - save + load gives back exactly the live keys (values, types, expiries);
 *   - ASan/UBSan/LSan: no memory errors, no undefined behaviour, no leaks
 *     (also on every out-of-memory path).
 */
#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host_shim.h"
#include "kv.h"
#include "snapshot.h"

static const char *names[] = {
    "PING", "ECHO", "SELECT", "QUIT", "COMMAND", "INFO", "DBSIZE", "FLUSHDB", "FLUSHALL", "KEYS", "SET",
    "GET", "GETSET", "MGET", "MSET", "APPEND", "STRLEN", "DEL", "EXISTS", "INCR", "INCRBY", "DECR", "DECRBY",
    "EXPIRE", "PEXPIRE", "TTL", "PTTL", "PERSIST", "LPUSH", "RPUSH", "LPOP", "RPOP", "LLEN", "LRANGE", "HSET",
    "HGET", "HDEL", "HGETALL", "HLEN", "TYPE", "CONFIG", "EXPIREAT", "PEXPIREAT", "HMSET", "HEXISTS", "HKEYS",
    "HVALS", "SAVE", "LASTSAVE", "EXPIRETIME", "nosuch", "set", "Get", "BGSAVE",
};
#define NNAMES (sizeof names / sizeof names[0])

static const char *words[] = {
    "k0", "k1", "k2", "k3", "k4", "0", "1", "-1", "2", "10", "100", "200", "abc", "9223372036854775807",
    "-9223372036854775808", "NX", "XX", "GT", "LT", "EX", "PX", "EXAT", "PXAT", "GET", "KEEPTTL", "*", "k?",
    "k[0-2]", "[^k]*", "\\*", "f1", "f2", "COUNT", "DOCS", "INFO", "GET", "save", "keyspace", "",
};
#define NWORDS (sizeof words / sizeof words[0])

/* ---- Input reader ---- */
struct in {
  const uint8_t *p;
  size_t n;
};
static int next(struct in *in) {
  if (!in->n) return -1;
  in->n--;
  return *in->p++;
}

/* ---- Reply capture and validation ---- */
static ls_u8 reply_buf[1 << 16];
static ls_u8 *capture;
static size_t capture_len, capture_cap;

static void sink(void *ctx, const ls_u8 *data, size_t n) {
  (void)ctx;
  if (capture_len + n > capture_cap) {
    capture_cap = (capture_len + n) * 2;
    capture = realloc(capture, capture_cap);
    assert(capture);
  }
  memcpy(capture + capture_len, data, n);
  capture_len += n;
}

/* Length of one complete RESP2 reply at p, or 0 if malformed/incomplete. */
static size_t reply_len(const ls_u8 *p, size_t n, int depth) {
  assert(depth < 8);
  if (n < 3) return 0;
  const ls_u8 *eol = memchr(p, '\r', n);
  if (!eol || (size_t)(eol - p) + 2 > n || eol[1] != '\n') return 0;
  size_t line = (size_t)(eol - p) + 2;
  switch (p[0]) {
  case '+':
  case '-':
    for (const ls_u8 *q = p + 1; q < eol; q++) assert(*q != '\n');
    return line;
  case ':': {
    long long v;
    assert(kv_string2ll(p + 1, (size_t)(eol - p - 1), &v));
    return line;
  }
  case '$': {
    long long v;
    assert(kv_string2ll(p + 1, (size_t)(eol - p - 1), &v));
    if (v == -1) return line;
    assert(v >= 0);
    if (line + (size_t)v + 2 > n) return 0;
    assert(p[line + v] == '\r' && p[line + v + 1] == '\n');
    return line + (size_t)v + 2;
  }
  case '*': {
    long long v;
    assert(kv_string2ll(p + 1, (size_t)(eol - p - 1), &v));
    if (v == -1) return line;
    size_t off = line;
    for (long long i = 0; i < v; i++) {
      size_t k = reply_len(p + off, n - off, depth + 1);
      if (!k) return 0;
      off += k;
    }
    return off;
  }
  }
  return 0;
}

/* ---- Store checks ---- */
struct walk {
  size_t keys, expires;
  uint64_t digest;
  int live_only;
};

static int walk_visit(void *ctx, struct kv_entry *e) {
  struct walk *w = ctx;
  int is_live = e->expire == KV_NO_EXPIRE || kv_now_ms <= e->expire;
  if (w->live_only && !is_live) return 0;
  w->keys++;
  if (e->expire != KV_NO_EXPIRE) w->expires++;
  uint64_t h = kv_hash(e->key, e->klen, e->type);
  h = kv_hash(&e->expire, sizeof e->expire, h);
  switch (e->type) {
  case KV_STRING:
    assert(e->v.str.len <= e->v.str.cap);
    h = kv_hash(e->v.str.ptr, e->v.str.len, h);
    break;
  case KV_LIST: {
    struct kv_list *l = e->v.list;
    assert(l->len > 0 && l->len <= l->cap && (l->cap & (l->cap - 1)) == 0);
    for (size_t i = 0; i < l->len; i++) h = kv_hash(kv_list_at(l, i)->data, kv_list_at(l, i)->len, h);
    break;
  }
  case KV_HASH: {
    struct kv_hash *hh = e->v.hash;
    size_t n = 0;
    uint64_t fh = 0;
    for (struct kv_field *f = hh->first; f; f = f->next) {
      assert(kv_hash_get(hh, f->data, f->flen) == f);
      assert(!f->next || f->next->prev == f);
      fh += kv_hash(f->data, f->flen + f->vlen, f->flen); /* order-independent */
      n++;
    }
    assert(n == hh->count && n > 0);
    h ^= fh;
    break;
  }
  default:
    abort();
  }
  assert(kv_find_raw(e->key, e->klen) == e);
  w->digest += h; /* order-independent */
  return 0;
}

static struct walk check_store(int live_only) {
  struct walk w = {0, 0, 0, live_only};
  kv_foreach(walk_visit, &w);
  if (!live_only) {
    assert(w.keys == kv_size());
    assert(w.expires == kv_expires());
  }
  return w;
}

/* ---- Memory disk ---- */
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
static struct kv_snap_io io = {d_read, d_write, d_flush, 0, 0};

static void roundtrip(void) {
  unsigned rate = kv_host_fail_rate;
  kv_host_fail_rate = 0;
  struct walk before = check_store(1);
  const char *err = kv_snapshot_save(&io);
  if (!err) {
    kv_flush_all();
    ls_u64 keys;
    char why[96];
    int r = kv_snapshot_load(&io, &keys, why, sizeof why);
    if (r != 0) fprintf(stderr, "load failed: %s\n", why);
    assert(r == 0);
    struct walk after = check_store(0);
    assert(keys == before.keys && after.keys == before.keys);
    assert(after.digest == before.digest);
  } else {
    assert(strstr(err, "does not fit"));
  }
  kv_host_fail_rate = rate;
}

static const char *save_hook(void) { return kv_snapshot_save(&io); }

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  disk_size = 1 << 20;
  disk = calloc(1, disk_size);
  io.disk_size = disk_size;
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct in in = {data, size};
  kv_host_fail_rate = 0;
  kv_host_seed(size);
  kv_now_ms = 1700000000000ll;
  memset(&kv_stats, 0, sizeof kv_stats);
  memset(disk, 0, 4096);
  kv_snap_current.offset = kv_snap_current.length = 0;
  kv_store_init(0x1234567);
  kv_commands_init();
  kv_env.save = save_hook;
  kv_env.start_ms = kv_now_ms;
  kv_maxmemory = 0;

  struct kv_out out = {reply_buf, 0, sizeof reply_buf, sink, 0};
  struct kv_client client = {1, 0};
  struct kv_arg argv[8];
  ls_u8 raw[8][64];

  int trace = getenv("KV_FUZZ_TRACE") != 0; /* print commands and replies */
  int op;
  while ((op = next(&in)) >= 0) {
    if (op >= 0xf0) {
      int a = next(&in);
      if (a < 0) break;
      switch (op) {
      case 0xf0: kv_now_ms += a * 10; break;
      case 0xf1: kv_active_expire(); break;
      case 0xf2: kv_rehash_step(a); break;
      case 0xf3: roundtrip(); break;
      case 0xf4: kv_host_fail_rate = (unsigned)a / 4; break;
      case 0xf5: kv_now_ms += (long long)a * 100000; break;
      default: break;
      }
      continue;
    }
    int na = next(&in);
    if (na < 0) break;
    int argc = 1 + na % 8; /* 1..8 */
    argv[0].ptr = (const ls_u8 *)names[op % NNAMES];
    argv[0].len = strlen(names[op % NNAMES]);
    int ok = 1;
    for (int i = 1; i < argc && ok; i++) {
      int sel = next(&in);
      if (sel < 0) {
        ok = 0;
        break;
      }
      if (sel < 0xe0) {
        argv[i].ptr = (const ls_u8 *)words[sel % NWORDS];
        argv[i].len = strlen(words[sel % NWORDS]);
      } else {
        size_t n = (size_t)(sel - 0xe0) * 2; /* 0..62 raw bytes */
        if (n > in.n) n = in.n;
        memcpy(raw[i], in.p, n);
        in.p += n;
        in.n -= n;
        argv[i].ptr = raw[i];
        argv[i].len = n;
      }
    }
    if (!ok) break;
    capture_len = 0;
    client.close_after_reply = 0;
    kv_exec(&client, argv, (size_t)argc, &out);
    kv_out_flush(&out);
    if (trace) {
      fprintf(stderr, ">");
      for (int i = 0; i < argc; i++) fprintf(stderr, " %.*s", (int)argv[i].len, (const char *)argv[i].ptr);
      fprintf(stderr, "\n< %.*s", (int)capture_len, (const char *)capture);
    }
    size_t k = reply_len(capture, capture_len, 0);
    if (k != capture_len) {
      fprintf(stderr, "bad reply to %s: %.*s\n", names[op % NNAMES], (int)capture_len, (const char *)capture);
      abort();
    }
    check_store(0);
  }
  kv_host_fail_rate = 0;
  check_store(0);
  kv_flush_all();
  return 0;
}
