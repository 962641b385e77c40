/*
 * bench — measures the exit path and echo throughput. Modes (the argument
 * string):
 *
 *   nop N     N LS_OP_NOP calls:   BENCH nop calls=N ns_per_call=X total_ns=T
 *   clock N   N LS_OP_CLOCK calls: BENCH clock calls=N ns_per_call=X total_ns=T
 *   echo      an echo server built for throughput: every wait delivers a
 *             batch, all of it is answered into tx, and the next wait sends
 *             the answers. A line "shutdown\n" on any connection ends it:
 *             BENCH echo messages=M waits=W bytes=B
 *
 * N defaults to 10000. Bad arguments: usage, exit code 2.
 */
#include "lockstep.h"

static int usage(void) {
  ls_printf("BENCH usage: nop N | clock N | echo (got \"%s\")\n", ls_args());
  return 2;
}

/* Splits the argument string into at most `max` words (in place, in a copy). */
static int split_words(char *s, char **words, int max) {
  int n = 0;
  for (;;) {
    while (ls_isspace(*s)) *s++ = '\0';
    if (!*s) return n;
    if (n == max) return max + 1;
    words[n++] = s;
    while (*s && !ls_isspace(*s)) s++;
  }
}

static int bench_calls(const char *name, int use_clock, ls_u64 n) {
  ls_u64 t0 = ls_monotonic_ns();
  if (use_clock) {
    ls_u64 mono = 0;
    for (ls_u64 i = 0; i < n; i++) {
      ls_i32 r = ls_clock(&mono, 0);
      if (r != LS_OK) ls_abortf("bench: clock failed (%d)", r);
    }
  } else {
    for (ls_u64 i = 0; i < n; i++) {
      ls_i32 r = ls_nop();
      if (r != LS_OK) ls_abortf("bench: nop failed (%d)", r);
    }
  }
  ls_u64 t1 = ls_monotonic_ns();
  ls_u64 total = t1 - t0;
  ls_printf("BENCH %s calls=%llu ns_per_call=%llu total_ns=%llu\n", name, n, n ? total / n : 0, total);
  return 0;
}

/* ---- echo ---------------------------------------------------------------- */

/* Per connection: how much of "shutdown" the current line has matched
 * (NOT_SHUTDOWN once it cannot match). */
#define NOT_SHUTDOWN 0xffu
struct conn {
  struct conn *next;
  ls_u32 id;
  ls_u8 match;
};

#define BUCKETS 1024
static struct conn *conns[BUCKETS];
static ls_u64 messages, bytes, waits;

static struct conn **slot(ls_u32 id) {
  struct conn **p = &conns[id % BUCKETS];
  while (*p && (*p)->id != id) p = &(*p)->next;
  return p;
}

static struct conn *conn_get(ls_u32 id) {
  struct conn **p = slot(id);
  if (!*p) {
    struct conn *c = ls_calloc(1, sizeof *c);
    if (!c) ls_abort("bench: out of memory");
    c->id = id;
    *p = c;
  }
  return *p;
}

static void finish(void) {
  ls_printf("BENCH echo messages=%llu waits=%llu bytes=%llu\n", messages, waits, bytes);
  ls_exit(0);
}

/* Runs the "shutdown\n" matcher over new bytes; 1 when a line matched.
 * States: 0..8 = that many bytes of "shutdown" matched at a line start,
 * CR_SEEN = "shutdown\r", NOT_SHUTDOWN = this line cannot match. */
#define CR_SEEN 9u
static int saw_shutdown(struct conn *c, const ls_u8 *p, ls_u32 len) {
  static const char word[] = "shutdown";
  const ls_u8 *end = p + len;
  while (p < end) {
    if (c->match == NOT_SHUTDOWN) { /* skip to the next line quickly */
      const ls_u8 *nl = memchr(p, '\n', (size_t)(end - p));
      if (!nl) return 0;
      c->match = 0;
      p = nl + 1;
      continue;
    }
    ls_u8 b = *p++;
    if (c->match < sizeof word - 1) {
      c->match = b == (ls_u8)word[c->match] ? c->match + 1 : b == '\n' ? 0 : NOT_SHUTDOWN;
    } else if (b == '\n') {
      return 1;
    } else {
      c->match = b == '\r' && c->match == sizeof word - 1 ? CR_SEEN : NOT_SHUTDOWN;
    }
  }
  return 0;
}

static void on_data(void *ctx, ls_u32 id, const ls_u8 *data, ls_u32 len) {
  (void)ctx;
  messages++;
  bytes += len;
  ls_i32 r = ls_net_send(id, data, len);
  if (r != LS_OK) ls_abortf("bench: send failed (%d)", r);
  if (saw_shutdown(conn_get(id), data, len)) finish();
}

static void on_closed(void *ctx, ls_u32 id) {
  (void)ctx;
  struct conn **p = slot(id);
  if (*p) {
    struct conn *c = *p;
    *p = c->next;
    ls_free(c);
  }
}

static int bench_echo(void) {
  /* Large rings: more messages per exit. */
  ls_i32 r = ls_net_init(4u << 20, 4u << 20);
  if (r != LS_OK) {
    ls_printf("BENCH echo: net attach failed (%d)\n", r);
    return 1;
  }
  ls_printf("BENCH echo serving\n");
  struct ls_net_handlers h = {.on_data = on_data, .on_closed = on_closed};
  for (;;) {
    waits++;
    ls_i64 ready = ls_net_poll(&h, LS_WAIT_FOREVER, 0);
    if (ready < 0) ls_abortf("bench: poll failed (%lld)", ready);
  }
}

int ls_main(const struct ls_boot_info *boot) {
  char args[sizeof boot->args];
  ls_strlcpy(args, boot->args, sizeof args);
  char *w[3];
  int n = split_words(args, w, 2);
  if (n < 1 || n > 2) return usage();
  if (!strcmp(w[0], "echo") && n == 1) return bench_echo();
  int use_clock = !strcmp(w[0], "clock");
  if (!use_clock && strcmp(w[0], "nop")) return usage();
  ls_u64 calls = 10000;
  if (n == 2 && ls_parse_u64(w[1], strlen(w[1]), &calls) != 0) return usage();
  return bench_calls(w[0], use_clock, calls);
}
