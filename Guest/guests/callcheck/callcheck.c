/*
 * callcheck — exercises every hypercall and reports one line per check:
 *
 *     ARGS <args>
 *     CHECK <name> ok <details>      or      CHECK <name> FAIL <details>
 *     ...
 *     CALLCHECK DONE passed=N failed=M
 *
 * and exits 0 if every check passed, 1 otherwise. If the argument string
 * contains "net", it then serves as an echo server before the DONE line:
 * every DATA message is sent back on its connection; a line "quit\n" is
 * echoed and closes that connection; a line "shutdown\n" ends the run.
 */
#include "lockstep.h"

static int passed, failed;

static LS_PRINTF(3, 4) void check(const char *name, int ok, const char *fmt, ...) {
  char detail[384];
  va_list ap;
  va_start(ap, fmt);
  ls_vsnprintf(detail, sizeof detail, fmt, ap);
  va_end(ap);
  ls_printf("CHECK %s %s%s%s\n", name, ok ? "ok" : "FAIL", detail[0] ? " " : "", detail);
  if (ok) passed++;
  else failed++;
}

static ls_u64 addr(const void *p) { return (ls_u64)(unsigned long)p; }

/* ---- Individual checks ------------------------------------------------- */

static void check_boot(const struct ls_boot_info *b) {
  extern char __image_end[];
  int ok = b->memory_size > 0 && b->memory_size <= LS_MAX_MEMORY && (b->heap_start & 4095) == 0 &&
           b->heap_start >= addr(__image_end) && b->heap_start <= b->heap_end &&
           b->heap_end <= b->stack_top && b->stack_top <= b->memory_size &&
           b->args_length == strlen(b->args) && b->flags == 0;
  check("boot", ok, "mem=%llu heap=0x%llx-0x%llx stack_top=0x%llx disk=%llu args_length=%u", b->memory_size,
        b->heap_start, b->heap_end, b->stack_top, b->disk_size, b->args_length);
}

static void check_basic_calls(void) {
  ls_i32 r = ls_nop();
  check("nop", r == LS_OK, "result=%d", r);

  static const char hello[] = "callcheck: console write\n";
  r = ls_console_write(hello, sizeof hello - 1);
  check("console", r == LS_OK, "result=%d", r);

  /* Too long: LS_EINVAL, whatever the buffer (it is valid here when the heap
   * is large enough; otherwise the image start, which RAM surely holds). */
  const struct ls_boot_info *b = ls_boot_info();
  ls_u64 buf = b->heap_end - b->heap_start > LS_CONSOLE_MAX + 1 ? b->heap_start : LS_IMAGE_BASE;
  r = ls_call4(LS_OP_CONSOLE_WRITE, buf, LS_CONSOLE_MAX + 1, 0, 0);
  check("console-einval", r == LS_EINVAL, "result=%d", r);

  r = ls_call4(99, 0, 0, 0, 0);
  check("unknown-op", r == LS_ENOSYS, "op=99 result=%d", r);
}

static void check_clock(void) {
  ls_u64 mono[6], wall[6];
  int ok = 1;
  ls_i32 r = LS_OK;
  for (int i = 0; i < 6 && r == LS_OK; i++) r = ls_clock(&mono[i], &wall[i]);
  ok = r == LS_OK;
  for (int i = 1; ok && i < 6; i++) ok = mono[i] >= mono[i - 1];
  check("clock", ok, "result=%d mono=%llu wall=%llu", r, ok ? mono[0] : 0, ok ? wall[0] : 0);
  /* 2020-01-01T00:00:00Z */
  const ls_u64 y2020 = 1577836800ull * LS_NS_PER_SEC;
  check("clock-wall", r == LS_OK && wall[5] > y2020, "wall=%llu", r == LS_OK ? wall[5] : 0);
}

static void check_entropy(void) {
  static ls_u8 a[4096], b[4096];
  ls_i32 r1 = ls_entropy(a, sizeof a);
  ls_i32 r2 = ls_entropy(b, sizeof b);
  int nonzero = 0;
  for (size_t i = 0; i < sizeof a; i++) nonzero |= a[i] != 0;
  check("entropy", r1 == LS_OK && nonzero, "result=%d nonzero=%d", r1, nonzero);
  int differ = memcmp(a, b, sizeof a) != 0;
  check("entropy-differs", r2 == LS_OK && differ, "result=%d differ=%d", r2, differ);

  ls_u8 odd[13];
  ls_i32 r = ls_entropy(odd + 1, 7); /* odd length, unaligned buffer */
  check("entropy-small", r == LS_OK, "result=%d len=7", r);

  r = ls_call4(LS_OP_ENTROPY, addr(a), LS_ENTROPY_MAX + 1, 0, 0);
  check("entropy-einval", r == LS_EINVAL, "result=%d len=%llu", r, LS_ENTROPY_MAX + 1);
}

static void check_wait(void) {
  ls_u64 before = ls_monotonic_ns(), now = 0;
  ls_i64 ready = ls_wait(LS_WAIT_POLL, &now);
  ls_u64 elapsed = now - before;
  check("wait-poll", ready == (ls_i64)LS_READY_TIMEOUT && now >= before && elapsed < LS_NS_PER_SEC,
        "ready=%lld elapsed_ns=%llu", ready, elapsed);

  before = ls_monotonic_ns();
  ls_u64 deadline = before + 20 * LS_NS_PER_MS;
  ready = ls_wait(deadline, &now);
  check("wait-deadline", ready >= 0 && (ready & LS_READY_TIMEOUT) && now >= deadline,
        "ready=%lld now=%llu deadline=%llu late_ns=%lld", ready, now, deadline, (ls_i64)(now - deadline));
}

static void check_block(const struct ls_boot_info *b) {
  ls_u64 size = b->disk_size;
  static ls_u8 buf[4096];
  if (size == 0) {
    ls_i32 r = ls_call4(LS_OP_BLOCK_READ, 0, addr(buf), LS_SECTOR_SIZE, 0);
    ls_i32 w = ls_call4(LS_OP_BLOCK_WRITE, 0, addr(buf), LS_SECTOR_SIZE, 0);
    check("block-nodev", r == LS_ENODEV && w == LS_ENODEV, "read=%d write=%d", r, w);
    return;
  }
  check("disk-size", ls_disk_size() == size && size % LS_SECTOR_SIZE == 0, "bytes=%llu", size);
  ls_u64 sectors = size / LS_SECTOR_SIZE;
  if (sectors == 0) return;

  /* Write patterns at the start and in the last sector, read them back, and
   * restore what was there. */
  ls_u64 first_len = sectors * LS_SECTOR_SIZE < sizeof buf ? sectors * LS_SECTOR_SIZE : sizeof buf;
  ls_u64 last = (sectors - 1) * LS_SECTOR_SIZE;
  ls_u8 *saved_first = ls_malloc(first_len), *saved_last = ls_malloc(LS_SECTOR_SIZE);
  ls_u8 *back = ls_malloc(sizeof buf);
  if (!saved_first || !saved_last || !back) {
    check("block-rw", 0, "out of memory");
    return;
  }
  ls_i32 r = ls_block_read(0, saved_first, first_len);
  if (r == LS_OK) r = ls_block_read(last, saved_last, LS_SECTOR_SIZE);
  for (size_t i = 0; i < sizeof buf; i++) buf[i] = (ls_u8)(i * 7 + 0x5a);
  ls_i32 w = r == LS_OK ? ls_block_write(0, buf, first_len) : r;
  if (w == LS_OK) w = ls_block_write(last, buf + 512, LS_SECTOR_SIZE);
  ls_i32 f = w == LS_OK ? ls_block_flush() : w;
  memset(back, 0, sizeof buf);
  ls_i32 rb = f == LS_OK ? ls_block_read(0, back, first_len) : f;
  int same = rb == LS_OK && memcmp(back, buf, first_len) == 0;
  if (rb == LS_OK) rb = ls_block_read(last, back, LS_SECTOR_SIZE);
  same = same && rb == LS_OK && memcmp(back, buf + 512, LS_SECTOR_SIZE) == 0;
  ls_i32 restore = ls_block_write(0, saved_first, first_len);
  if (restore == LS_OK) restore = ls_block_write(last, saved_last, LS_SECTOR_SIZE);
  if (restore == LS_OK) restore = ls_block_flush();
  check("block-rw", r == LS_OK && w == LS_OK && f == LS_OK && same && restore == LS_OK,
        "read=%d write=%d flush=%d readback=%d same=%d restore=%d last_offset=%llu", r, w, f, rb, same,
        restore, last);
  ls_free(saved_first);
  ls_free(saved_last);
  ls_free(back);

  ls_i32 u1 = ls_call4(LS_OP_BLOCK_READ, 1, addr(buf), LS_SECTOR_SIZE, 0);
  ls_i32 u2 = ls_call4(LS_OP_BLOCK_READ, 0, addr(buf), 100, 0);
  ls_i32 u3 = ls_call4(LS_OP_BLOCK_WRITE, 256, addr(buf), LS_SECTOR_SIZE, 0);
  check("block-unaligned", u1 == LS_EINVAL && u2 == LS_EINVAL && u3 == LS_EINVAL,
        "read_offset1=%d read_len100=%d write_offset256=%d", u1, u2, u3);

  ls_i32 e1 = ls_call4(LS_OP_BLOCK_READ, size, addr(buf), LS_SECTOR_SIZE, 0);
  ls_i32 e2 = ls_call4(LS_OP_BLOCK_WRITE, size, addr(buf), LS_SECTOR_SIZE, 0);
  ls_i32 e3 = ls_call4(LS_OP_BLOCK_READ, last, addr(buf), 2 * LS_SECTOR_SIZE, 0);
  check("block-past-end", e1 == LS_EINVAL && e2 == LS_EINVAL && e3 == LS_EINVAL,
        "read_at_end=%d write_at_end=%d read_across_end=%d", e1, e2, e3);

  ls_u8 *big = ls_malloc(LS_BLOCK_MAX_IO + LS_SECTOR_SIZE);
  if (big) {
    ls_i32 t = ls_call4(LS_OP_BLOCK_READ, 0, addr(big), LS_BLOCK_MAX_IO + LS_SECTOR_SIZE, 0);
    check("block-too-long", t == LS_EINVAL, "len=%llu result=%d", LS_BLOCK_MAX_IO + LS_SECTOR_SIZE, t);
    ls_free(big);
  }
}

static void check_heap(void) {
  struct ls_heap_stats s0, s1;
  ls_heap_stats(&s0);
  void *ptrs[256];
  int aligned = 1, ok = 1;
  for (int round = 0; round < 50 && ok; round++) {
    for (int i = 0; i < 256; i++) {
      ptrs[i] = ls_malloc((size_t)(i * 37 % 2000) + 1);
      if (!ptrs[i]) ok = 0;
      else {
        aligned &= ((unsigned long)ptrs[i] & 15) == 0;
        memset(ptrs[i], i, (size_t)(i * 37 % 2000) + 1);
      }
    }
    for (int i = 0; i < 256; i++) {
      if (ptrs[i] && ((ls_u8 *)ptrs[i])[0] != (ls_u8)i) ok = 0;
      ls_free(ptrs[i]);
    }
  }
  ls_heap_stats(&s1);
  int consistent = ls_heap_check() == 0;
  int reused = s1.in_use == s0.in_use && s1.allocations == s0.allocations;
  void *huge = ls_malloc((size_t)1 << 62);
  check("heap", ok && aligned && consistent && reused && huge == 0,
        "aligned=%d consistent=%d reused=%d oom_null=%d in_use=%zu free=%zu", aligned, consistent, reused,
        huge == 0, s1.in_use, s1.free);
}

static void check_format(void) {
  char buf[128];
  ls_snprintf(buf, sizeof buf, "%d|%5u|%-4x|%08llx|%lld|%zu|%.*s|%c|%%|%s", -42, 7u, 0xabu, 0x1234ull,
              -9223372036854775807ll - 1, (size_t)99, 3, "abcdef", 'z', "end");
  const char *want = "-42|    7|ab  |00001234|-9223372036854775808|99|abc|z|%|end";
  check("format", strcmp(buf, want) == 0, "got=\"%s\"", buf);
}

static int args_want_net(const char *args) { return strstr(args, "net") != 0; }

static void check_net(int net_mode) {
  /* Invalid capacities are refused (or, without a configured network, the
   * device is absent). */
  ls_u8 *scratch = ls_memalign(4096, 2 * (sizeof(struct ls_ring) + 8192));
  if (scratch) {
    memset(scratch, 0, 2 * (sizeof(struct ls_ring) + 8192));
    ls_u64 rx = addr(scratch), tx = rx + sizeof(struct ls_ring) + 8192;
    ls_i32 a = ls_call4(LS_OP_NET_ATTACH, rx, 5000, tx, 4096);
    ls_i32 c = ls_call4(LS_OP_NET_ATTACH, rx, 4096, tx, 2048);
    int ok = net_mode ? (a == LS_EINVAL && c == LS_EINVAL)
                      : ((a == LS_EINVAL || a == LS_ENODEV) && (c == LS_EINVAL || c == LS_ENODEV));
    check("net-attach-einval", ok, "cap5000=%d cap2048=%d", a, c);
    ls_free(scratch);
  }

  ls_i32 r = ls_net_init(64 * 1024, 64 * 1024);
  check("net-attach", net_mode ? r == LS_OK : (r == LS_OK || r == LS_ENODEV), "result=%d", r);
  if (r == LS_OK) {
    ls_i32 f = ls_net_flush();
    check("net-flush", f == LS_OK, "result=%d", f);
    ls_i32 again = ls_net_init(64 * 1024, 64 * 1024);
    check("net-attach-once", again == LS_ESTATE, "result=%d", again);
  }
}

/* ---- Echo server ----------------------------------------------------------- */

#define LINE_KEEP 16

struct conn {
  struct conn *next;
  ls_u32 id;
  ls_u32 line_len;     /* bytes of the current line so far */
  ls_u8 line[LINE_KEEP]; /* its first bytes */
  int closing;         /* CLOSE queued; ignore further data */
};

#define CONN_BUCKETS 256
static struct conn *conns[CONN_BUCKETS];
static struct {
  ls_u64 opened, closed, messages, bytes;
} stats;

static struct conn **conn_slot(ls_u32 id) {
  struct conn **p = &conns[id % CONN_BUCKETS];
  while (*p && (*p)->id != id) p = &(*p)->next;
  return p;
}

static struct conn *conn_get(ls_u32 id) {
  struct conn **p = conn_slot(id);
  if (!*p) {
    struct conn *c = ls_calloc(1, sizeof *c);
    if (!c) ls_abort("callcheck: out of memory");
    c->id = id;
    *p = c;
  }
  return *p;
}

static void finish(void) {
  check("net-echo", 1, "opened=%llu closed=%llu messages=%llu bytes=%llu", stats.opened, stats.closed,
        stats.messages, stats.bytes);
  ls_printf("CALLCHECK DONE passed=%d failed=%d\n", passed, failed);
  ls_exit(failed ? 1 : 0);
}

static void send_or_die(ls_u32 conn, const void *data, size_t len) {
  ls_i32 r = ls_net_send(conn, data, len);
  if (r != LS_OK) ls_abortf("callcheck: send to %u failed (%d)", conn, r);
  stats.bytes += len;
}

static int line_is(const struct conn *c, const char *word) {
  size_t n = strlen(word);
  /* "word\n" or "word\r\n" */
  if (c->line_len == n + 1) return memcmp(c->line, word, n) == 0;
  if (c->line_len == n + 2) return memcmp(c->line, word, n) == 0 && c->line[n] == '\r';
  return 0;
}

static void on_open(void *ctx, ls_u32 id, const char *peer, ls_u32 len) {
  (void)ctx;
  conn_get(id);
  stats.opened++;
  ls_printf("NET open conn=%u peer=%.*s\n", id, (int)len, peer);
}

static void on_data(void *ctx, ls_u32 id, const ls_u8 *data, ls_u32 len) {
  (void)ctx;
  struct conn *c = conn_get(id);
  stats.messages++;
  if (c->closing) return;
  for (ls_u32 i = 0; i < len; i++) {
    if (c->line_len < LINE_KEEP) c->line[c->line_len] = data[i];
    if (c->line_len < 0xffffffffu) c->line_len++;
    if (data[i] != '\n') continue;
    int quit = line_is(c, "quit"), shutdown = line_is(c, "shutdown");
    c->line_len = 0;
    if (quit || shutdown) {
      send_or_die(id, data, i + 1); /* echo up to the line's end */
      if (shutdown) finish();
      ls_i32 r = ls_net_close(id);
      if (r != LS_OK) ls_abortf("callcheck: close %u failed (%d)", id, r);
      c->closing = 1;
      return;
    }
  }
  send_or_die(id, data, len);
}

static void on_closed(void *ctx, ls_u32 id) {
  (void)ctx;
  struct conn **p = conn_slot(id);
  if (*p) {
    struct conn *c = *p;
    *p = c->next;
    ls_free(c);
  }
  stats.closed++;
  ls_printf("NET closed conn=%u\n", id);
}

static void serve_echo(void) {
  ls_printf("CALLCHECK serving echo\n");
  struct ls_net_handlers h = {.on_open = on_open, .on_data = on_data, .on_closed = on_closed};
  for (;;) {
    ls_i64 r = ls_net_poll(&h, LS_WAIT_FOREVER, 0);
    if (r < 0) ls_abortf("callcheck: net poll failed (%lld)", r);
  }
}

int ls_main(const struct ls_boot_info *boot) {
  ls_printf("ARGS %s\n", boot->args);
  int net_mode = args_want_net(boot->args);

  check_boot(boot);
  check_basic_calls();
  check_clock();
  check_entropy();
  check_wait(); /* before net attach: no input can be ready */
  check_block(boot);
  check_heap();
  check_format();
  check_net(net_mode);

  if (net_mode && ls_net_attached()) serve_echo(); /* exits on "shutdown" */
  if (net_mode) check("net-echo", 0, "net not attached");
  ls_printf("CALLCHECK DONE passed=%d failed=%d\n", passed, failed);
  return failed ? 1 : 0;
}
