/*
 * main.c — kvstore's event loop: connections, the rings, time, expiry and
 * the block device. Everything else (parser, store, commands, snapshot
 * format) is host-buildable C in the other files.
 *
 * One turn of the loop is one LS_OP_WAIT exit (which also sends every reply
 * queued since the last one), then every rx message is handled: the
 * requests in a DATA message are parsed straight from the ring when they
 * are complete, replies for one message are gathered in one buffer and
 * queued as one tx message. Time for all commands of a turn is the `now`
 * that the wait returned, so a loaded server makes no clock exits at all.
 *
 * Arguments (--guest-args, space separated):
 *   ring=MIB        rx and tx ring size in MiB (power of two, default 4)
 *   maxmemory=MIB   refuse commands that add data beyond this much heap in
 *                   use (default: the heap less 1/32 and 1 MiB)
 *   noload          start empty even if the disk holds a snapshot
 */
#include "kv.h"
#include "resp.h"
#include "snapshot.h"

#define OUT_CAP (64u * 1024u)
#define CONN_BUCKETS 4096u
#define EXPIRE_PERIOD_NS (100ull * LS_NS_PER_MS)
/* A connection's input buffer above this is freed when it empties. */
#define KEEP_BUFFER (64u * 1024u)

struct conn {
  struct conn *next;
  struct kv_client client;
  struct resp_parser parser;
  ls_u8 *buf; /* bytes of a partial request (from its first byte) */
  size_t len, cap;
};

static struct conn *conns[CONN_BUCKETS];
static ls_u64 open_conns;
static ls_u8 out_buf[OUT_CAP];
static struct kv_out out;
static long long wall_offset_ms; /* wall-clock ms minus monotonic ms, at boot */
static int have_disk;

size_t kv_used_memory(void) {
  struct ls_heap_stats s;
  ls_heap_stats(&s);
  return s.in_use;
}

static void set_time(ls_u64 mono_ns) { kv_now_ms = (long long)(mono_ns / LS_NS_PER_MS) + wall_offset_ms; }

/* ---- Connections ---------------------------------------------------------- */

static struct conn **conn_slot(ls_u32 id) {
  struct conn **p = &conns[id & (CONN_BUCKETS - 1)];
  while (*p && (*p)->client.id != id) p = &(*p)->next;
  return p;
}

static void conn_free(struct conn **slot) {
  struct conn *c = *slot;
  *slot = c->next;
  resp_free(&c->parser);
  ls_free(c->buf);
  ls_free(c);
  open_conns--;
  kv_env.connected_clients = open_conns;
}

static void on_open(ls_u32 id) {
  struct conn **slot = conn_slot(id);
  if (*slot) return; /* ids are never reused; ignore a duplicate */
  struct conn *c = ls_malloc(sizeof *c);
  if (!c) {
    /* Cannot serve it: close at once (its data will be ignored). */
    ls_net_close(id);
    return;
  }
  memset(c, 0, sizeof *c);
  c->client.id = id;
  resp_init(&c->parser);
  *slot = c;
  open_conns++;
  kv_stats.connections++;
  kv_env.connected_clients = open_conns;
}

static void send_to(void *ctx, const ls_u8 *data, size_t n) {
  struct conn *c = ctx;
  ls_i32 r = ls_net_send(c->client.id, data, n);
  if (r != LS_OK) ls_abortf("kvstore: net send failed (%d)", r);
}

/* How much to reserve for a partial request of `have` bytes that needs
 * `need` (from the parser): all of it at once if it is not far off, so a
 * large argument is copied once; otherwise grow as bytes arrive (a client
 * announcing 512 MiB must not make us allocate it before it is sent). */
static size_t reserve_for(size_t have, size_t need) {
  size_t hint = have * 2 + (1u << 20);
  return KV_MAX(have, KV_MIN(need, hint));
}

/* Makes c->buf hold at least n bytes (keeping c->len). 0 or -1. */
static int conn_reserve(struct conn *c, size_t n) {
  if (n <= c->cap) return 0;
  size_t cap = c->cap ? c->cap : 1024;
  while (cap < n) cap = cap > ((size_t)-1) / 2 ? n : cap * 2;
  ls_u8 *b = ls_realloc(c->buf, cap);
  if (!b) {
    b = ls_realloc(c->buf, n); /* try the exact size */
    if (!b) return -1;
    cap = n;
  }
  c->buf = b;
  c->cap = cap;
  return 0;
}

/* Runs every complete request in base[0..len) (the current request starts
 * at base[0]). Returns the bytes consumed, or -1 if the connection must be
 * closed after the replies queued so far. */
static long long run_requests(struct conn *c, const ls_u8 *base, size_t len) {
  size_t off = 0;
  while (off < len) {
    size_t need = resp_need(&c->parser);
    if (need && len - off < need) break;
    size_t used;
    int r = resp_parse(&c->parser, base + off, len - off, &used);
    if (r == RESP_COMMAND) {
      kv_exec(&c->client, c->parser.argv, c->parser.argc, &out);
      resp_reset(&c->parser);
      off += used;
      if (c->client.close_after_reply) return -1;
    } else if (r == RESP_EMPTY) {
      resp_reset(&c->parser);
      off += used;
    } else if (r == RESP_INCOMPLETE) {
      break;
    } else if (r == RESP_ERROR) {
      kv_out_raw(&out, "-ERR ", 5);
      kv_out_raw(&out, c->parser.error, strlen(c->parser.error));
      kv_out_raw(&out, "\r\n", 2);
      return -1;
    } else {
      kv_out_error(&out, KV_ERR_OOM);
      return -1;
    }
  }
  return (long long)off;
}

static void on_data(ls_u32 id, const ls_u8 *data, size_t n) {
  struct conn **slot = conn_slot(id);
  struct conn *c = *slot;
  if (!c) return; /* a connection we closed (or could not take) */
  out.ctx = c;
  long long used;
  int fail = 0;
  if (c->len == 0) {
    /* Parse straight from the ring; keep only a partial request. */
    used = run_requests(c, data, n);
    if (used >= 0 && (size_t)used < n) {
      size_t rest = n - (size_t)used;
      if (conn_reserve(c, reserve_for(rest, resp_need(&c->parser))) != 0) {
        fail = 1;
      } else {
        memcpy(c->buf, data + used, rest);
        c->len = rest;
      }
    }
  } else {
    if (conn_reserve(c, reserve_for(c->len + n, resp_need(&c->parser))) != 0) {
      fail = 1;
      used = -1;
    } else {
      memcpy(c->buf + c->len, data, n);
      c->len += n;
      used = run_requests(c, c->buf, c->len);
      if (used > 0) {
        memmove(c->buf, c->buf + used, c->len - (size_t)used);
        c->len -= (size_t)used;
      }
    }
    if (c->len == 0 && c->cap > KEEP_BUFFER) {
      ls_free(c->buf);
      c->buf = 0;
      c->cap = 0;
    }
  }
  if (fail) kv_out_error(&out, KV_ERR_OOM);
  kv_out_flush(&out);
  if (used < 0 || fail) {
    /* QUIT, a protocol error or no memory for the request: close after the
     * replies (the VMM sends no CLOSED for a connection the guest closed). */
    ls_net_close(id);
    conn_free(slot);
  }
}

static void on_closed(ls_u32 id) {
  struct conn **slot = conn_slot(id);
  if (*slot) conn_free(slot);
}

static void dispatch(void) {
  struct ls_net_event ev;
  int r;
  while ((r = ls_net_next(&ev)) > 0) {
    kv_stats.rx_messages++;
    switch (ev.type) {
    case LS_MSG_OPEN: on_open(ev.conn); break;
    case LS_MSG_DATA: on_data(ev.conn, ev.data, ev.length); break;
    case LS_MSG_CLOSED: on_closed(ev.conn); break;
    }
  }
  ls_net_consume();
  if (r < 0) ls_abortf("kvstore: rx ring is corrupt (%d)", r);
}

/* ---- Disk ----------------------------------------------------------------- */

static int disk_read(void *ctx, ls_u64 offset, void *buf, size_t len) {
  (void)ctx;
  return ls_block_read(offset, buf, len);
}
static int disk_write(void *ctx, ls_u64 offset, const void *buf, size_t len) {
  (void)ctx;
  return ls_block_write(offset, buf, len);
}
static int disk_flush(void *ctx) {
  (void)ctx;
  return ls_block_flush();
}

static struct kv_snap_io disk = {disk_read, disk_write, disk_flush, 0, 0};

static const char *save(void) {
  if (!have_disk) return "ERR no disk attached";
  ls_u64 t0 = ls_monotonic_ns();
  const char *err = kv_snapshot_save(&disk);
  ls_u64 t1 = ls_monotonic_ns();
  set_time(t1);
  if (err)
    ls_printf("kvstore: SAVE failed: %s\n", err);
  else
    ls_printf("kvstore: saved %llu keys (%llu bytes at %llu) in %llu ms\n", (ls_u64)kv_size(),
              kv_snap_current.length, kv_snap_current.offset, (t1 - t0) / LS_NS_PER_MS);
  return err;
}

/* ---- Arguments ------------------------------------------------------------- */

struct options {
  ls_u64 ring_mib;
  ls_u64 maxmemory_mib;
  int noload;
};

static int parse_args(const char *args, struct options *o) {
  o->ring_mib = 4;
  o->maxmemory_mib = 0;
  o->noload = 0;
  const char *p = args;
  for (;;) {
    while (*p == ' ' || *p == '\t') p++;
    if (!*p) return 0;
    const char *w = p;
    while (*p && *p != ' ' && *p != '\t') p++;
    size_t n = (size_t)(p - w);
    if (n == 6 && !strncmp(w, "noload", 6)) {
      o->noload = 1;
    } else if (n > 5 && !strncmp(w, "ring=", 5)) {
      if (ls_parse_u64(w + 5, n - 5, &o->ring_mib) != 0 || !o->ring_mib || o->ring_mib > 64 ||
          (o->ring_mib & (o->ring_mib - 1)))
        return -1;
    } else if (n > 10 && !strncmp(w, "maxmemory=", 10)) {
      if (ls_parse_u64(w + 10, n - 10, &o->maxmemory_mib) != 0) return -1;
    } else {
      return -1;
    }
  }
}

/* ---- Main ------------------------------------------------------------------- */

int ls_main(const struct ls_boot_info *boot) {
  struct options opt;
  if (parse_args(boot->args, &opt) != 0) {
    ls_printf("kvstore: bad arguments \"%s\" (usage: [ring=MIB] [maxmemory=MIB] [noload])\n", boot->args);
    return 2;
  }
  ls_u64 mono, wall;
  if (ls_clock(&mono, &wall) != LS_OK) ls_abort("kvstore: no clock");
  wall_offset_ms = (long long)(wall / LS_NS_PER_MS) - (long long)(mono / LS_NS_PER_MS);
  set_time(mono);
  kv_env.start_ms = kv_now_ms;
  kv_env.save = save;

  kv_store_init(ls_random_u64());
  kv_commands_init();
  out.buf = out_buf;
  out.cap = OUT_CAP;
  out.flush = send_to;

  ls_i32 r = ls_net_init(opt.ring_mib << 20, opt.ring_mib << 20);
  if (r != LS_OK) {
    ls_printf("kvstore: net attach failed (%d)\n", r);
    return 1;
  }

  struct ls_heap_stats hs;
  ls_heap_stats(&hs);
  kv_maxmemory = opt.maxmemory_mib ? (size_t)(opt.maxmemory_mib << 20) : hs.total - hs.total / 32 - (1u << 20);

  disk.disk_size = ls_disk_size();
  have_disk = disk.disk_size >= KV_SNAP_DATA_ALIGN * 2;
  ls_u64 keys = 0;
  if (!have_disk) {
    ls_printf("kvstore: no disk attached: SAVE is disabled\n");
  } else if (opt.noload) {
    ls_printf("kvstore: noload: not loading the snapshot\n");
  } else {
    char why[96];
    if (kv_snapshot_load(&disk, &keys, why, sizeof why) == 0)
      ls_printf("kvstore: loaded %llu keys from the snapshot (%llu bytes at %llu)\n", keys, kv_snap_current.length,
                kv_snap_current.offset);
    else
      ls_printf("kvstore: starting empty: %s\n", why);
  }
  ls_printf("kvstore ready keys=%llu\n", (ls_u64)kv_size());

  ls_u64 now = mono, next_cycle = mono + EXPIRE_PERIOD_NS;
  for (;;) {
    ls_u64 deadline = kv_expires() > 0 ? next_cycle : LS_WAIT_FOREVER;
    ls_i64 ready = ls_wait(ls_net_pending() ? LS_WAIT_POLL : deadline, &now);
    if (ready < 0) ls_abortf("kvstore: wait failed (%lld)", ready);
    kv_stats.waits++;
    set_time(now);
    dispatch();
    if (now >= next_cycle) {
      kv_active_expire();
      next_cycle = now + EXPIRE_PERIOD_NS;
    }
    kv_rehash_step(100);
  }
}
