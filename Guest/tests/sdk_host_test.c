/*
 * sdk_host_test.c — hosted unit tests of the guest SDK.
 *
 * Built as an ordinary Linux program with -DLS_HOST_TEST: the doorbell
 * calls ls_host_doorbell() below, a small fake VMM with its own,
 * independently written ring producer (rx) and consumer (tx) that checks
 * every rule of lockstep_abi.h. The SDK's string functions are renamed
 * lsh_* in this mode so that they can be compared with the host libc's.
 *
 * Prints "N passed, M failed" and exits non-zero if anything failed.
 */
#define _DEFAULT_SOURCE 1
#include <limits.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>

/* The host libc's versions, taken before lockstep.h renames the names. */
static void *(*const libc_memcpy)(void *, const void *, size_t) = memcpy;
static void *(*const libc_memmove)(void *, const void *, size_t) = memmove;
static void *(*const libc_memset)(void *, int, size_t) = memset;
static int (*const libc_memcmp)(const void *, const void *, size_t) = memcmp;
static void *(*const libc_memchr)(const void *, int, size_t) = memchr;
static size_t (*const libc_strlen)(const char *) = strlen;
static int (*const libc_strcmp)(const char *, const char *) = strcmp;
static int (*const libc_strncmp)(const char *, const char *, size_t) = strncmp;
static int (*const libc_strcasecmp)(const char *, const char *) = strcasecmp;
static int (*const libc_strncasecmp)(const char *, const char *, size_t) = strncasecmp;
static char *(*const libc_strchr)(const char *, int) = strchr;
static char *(*const libc_strrchr)(const char *, int) = strrchr;
static char *(*const libc_strstr)(const char *, const char *) = strstr;

#include "internal.h" /* lockstep.h plus the SDK's internals */

/* ---- Harness ------------------------------------------------------------ */

static int passed, failed;

#define CHECK(cond, ...)                                                   \
  do {                                                                     \
    if (cond) {                                                            \
      passed++;                                                            \
    } else {                                                               \
      failed++;                                                            \
      fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);      \
      fprintf(stderr, __VA_ARGS__);                                        \
      fputc('\n', stderr);                                                 \
    }                                                                      \
  } while (0)

static int sign(int v) { return (v > 0) - (v < 0); }

static uint64_t rng_state = 0x4c6f636b73746570ull; /* "Lockstep" */
static uint64_t rnd(void) {                          /* SplitMix64 */
  uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
static uint64_t rnd_below(uint64_t n) { return n ? rnd() % n : 0; }

/* ---- Fake VMM ------------------------------------------------------------- */

#define MAX_EVENTS 16384
#define MAX_CONNS 64
#define STREAM_MAX (1u << 20)

struct event {
  uint32_t conn;
  uint16_t type;
  uint32_t len;
  uint8_t *data;
};

static struct {
  /* Console. */
  char console[1 << 16];
  size_t console_len;
  unsigned console_calls;
  /* Exit / abort. */
  jmp_buf *exit_jmp;
  int exit_code;
  char abort_msg[512];
  /* Clock. */
  uint64_t mono;
  /* Calls seen, by op. */
  unsigned calls[32];
  uint64_t last_arg[4];
  /* Disk. */
  uint8_t *disk;
  uint64_t disk_size;
  unsigned block_calls;
  uint64_t block_max_len;
  /* Net. */
  struct ls_ring *rx, *tx;
  uint64_t rx_cap, tx_cap;
  int drain_mode; /* 0 = all, 1 = nothing */
  struct event events[MAX_EVENTS];
  unsigned ev_head, ev_tail;
  unsigned rx_pads, rx_skips, tx_pads, tx_skips;
  unsigned tx_messages, tx_errors;
  /* Received per connection (tx), and whether CLOSE arrived. */
  uint8_t *stream[MAX_CONNS];
  size_t stream_len[MAX_CONNS];
  int closed[MAX_CONNS];
} vmm;

static uint64_t pad8(uint64_t n) { return (n + 7) & ~7ull; }

/* The VMM's tx consumer: parses and checks every message. */
static void vmm_tx_drain(void) {
  if (!vmm.tx || vmm.drain_mode == 1) return;
  struct ls_ring *r = vmm.tx;
  uint8_t *data = (uint8_t *)(r + 1);
  uint64_t cap = vmm.tx_cap, head = r->head, tail = r->tail;
  if (head - tail > cap || (head & 7)) {
    vmm.tx_errors++;
    return;
  }
  while (tail != head) {
    uint64_t off = tail & (cap - 1), to_end = cap - off, used = head - tail;
    if (to_end < LS_MSG_HEADER) {
      if (used < to_end) { vmm.tx_errors++; return; }
      vmm.tx_skips++;
      tail += to_end;
      continue;
    }
    struct ls_msg m;
    libc_memcpy(&m, data + off, sizeof m);
    if (m.type == LS_MSG_PAD) {
      if (used < to_end || m.length != to_end - LS_MSG_HEADER) { vmm.tx_errors++; return; }
      vmm.tx_pads++;
      tail += to_end;
      continue;
    }
    uint64_t size = LS_MSG_HEADER + pad8(m.length);
    if (size > to_end || size > used || m.flags || m.reserved || m.length > LS_MSG_MAX_PAYLOAD ||
        m.conn >= MAX_CONNS || (m.type != LS_MSG_DATA && m.type != LS_MSG_CLOSE)) {
      vmm.tx_errors++;
      return;
    }
    for (uint64_t i = m.length; i < pad8(m.length); i++)
      if (data[off + LS_MSG_HEADER + i] != 0) vmm.tx_errors++; /* padding is zeroed */
    if (vmm.closed[m.conn]) vmm.tx_errors++;                    /* nothing after CLOSE */
    if (m.type == LS_MSG_CLOSE) {
      if (m.length) vmm.tx_errors++;
      vmm.closed[m.conn] = 1;
    } else {
      if (!vmm.stream[m.conn]) vmm.stream[m.conn] = malloc(STREAM_MAX);
      if (vmm.stream_len[m.conn] + m.length > STREAM_MAX) { vmm.tx_errors++; return; }
      libc_memcpy(vmm.stream[m.conn] + vmm.stream_len[m.conn], data + off + LS_MSG_HEADER, m.length);
      vmm.stream_len[m.conn] += m.length;
    }
    vmm.tx_messages++;
    tail += size;
  }
  r->tail = tail;
}

/* The VMM's rx producer: appends one message if it fits; 0 if full. */
static int vmm_rx_push(const struct event *e) {
  struct ls_ring *r = vmm.rx;
  uint8_t *data = (uint8_t *)(r + 1);
  uint64_t cap = vmm.rx_cap, head = r->head, tail = r->tail;
  uint64_t size = LS_MSG_HEADER + pad8(e->len);
  uint64_t off = head & (cap - 1), to_end = cap - off;
  uint64_t need = size <= to_end ? size : to_end + size;
  if (cap - (head - tail) < need) return 0;
  if (size > to_end) {
    if (to_end >= LS_MSG_HEADER) {
      struct ls_msg pad = {0, LS_MSG_PAD, 0, (uint32_t)(to_end - LS_MSG_HEADER), 0};
      libc_memcpy(data + off, &pad, sizeof pad);
      libc_memset(data + off + LS_MSG_HEADER, 0xEE, to_end - LS_MSG_HEADER);
      vmm.rx_pads++;
    } else {
      libc_memset(data + off, 0xEE, to_end);
      vmm.rx_skips++;
    }
    head += to_end;
    off = 0;
  }
  struct ls_msg m = {e->conn, e->type, 0, e->len, 0};
  libc_memcpy(data + off, &m, sizeof m);
  if (e->len) libc_memcpy(data + off + LS_MSG_HEADER, e->data, e->len);
  libc_memset(data + off + LS_MSG_HEADER + e->len, 0xEE, pad8(e->len) - e->len); /* junk padding */
  r->head = head + size;
  return 1;
}

/* Queues input for the next WAIT. Like a real VMM, it splits DATA so that
 * every message fits the rx ring at any offset (<= capacity / 2). Returns
 * the number of messages queued. */
static unsigned vmm_queue(uint32_t conn, uint16_t type, const void *p, uint32_t len) {
  unsigned n = 0;
  const uint8_t *bytes = p;
  uint32_t max = (uint32_t)(vmm.rx_cap / 2 - LS_MSG_HEADER);
  do {
    uint32_t k = type == LS_MSG_DATA && len > max ? max : len;
    if (vmm.ev_tail - vmm.ev_head == MAX_EVENTS) abort();
    struct event *e = &vmm.events[vmm.ev_tail++ % MAX_EVENTS];
    e->conn = conn;
    e->type = type;
    e->len = k;
    e->data = k ? malloc(k) : NULL;
    if (k) libc_memcpy(e->data, bytes, k);
    bytes += k;
    len -= k;
    n++;
  } while (len > 0);
  return n;
}

static int64_t vmm_wait(uint64_t deadline, uint64_t *now) {
  vmm_tx_drain();
  unsigned delivered = 0;
  while (vmm.ev_head != vmm.ev_tail && vmm_rx_push(&vmm.events[vmm.ev_head % MAX_EVENTS])) {
    free(vmm.events[vmm.ev_head % MAX_EVENTS].data);
    vmm.ev_head++;
    delivered++;
  }
  vmm.mono += 1000;
  if (delivered) {
    *now = vmm.mono;
    return LS_READY_NET;
  }
  if (deadline == LS_WAIT_FOREVER) {
    fprintf(stderr, "fake VMM: WAIT without deadline and no input would block forever\n");
    abort();
  }
  if (deadline > vmm.mono) vmm.mono = deadline;
  *now = vmm.mono;
  return LS_READY_TIMEOUT;
}

static int valid_cap(uint64_t c) { return c >= LS_RING_MIN && c <= LS_RING_MAX && !(c & (c - 1)); }

void ls_host_doorbell(ls_u64 descriptor_address) {
  struct ls_call *c = (struct ls_call *)(uintptr_t)descriptor_address;
  if (descriptor_address & 7) {
    fprintf(stderr, "fake VMM: misaligned descriptor\n");
    abort();
  }
  if (c->op < 32) vmm.calls[c->op]++;
  libc_memcpy(vmm.last_arg, c->arg, sizeof vmm.last_arg);
  c->result = LS_OK;
  switch (c->op) {
  case LS_OP_NOP:
    break;
  case LS_OP_CONSOLE_WRITE:
    if (c->arg[1] > LS_CONSOLE_MAX) {
      c->result = LS_EINVAL;
      break;
    }
    vmm.console_calls++;
    if (vmm.console_len + c->arg[1] < sizeof vmm.console) {
      libc_memcpy(vmm.console + vmm.console_len, (void *)(uintptr_t)c->arg[0], c->arg[1]);
      vmm.console_len += c->arg[1];
      vmm.console[vmm.console_len] = 0;
    }
    break;
  case LS_OP_EXIT:
  case LS_OP_ABORT:
    if (c->op == LS_OP_ABORT) {
      size_t n = c->arg[1] < sizeof vmm.abort_msg - 1 ? c->arg[1] : sizeof vmm.abort_msg - 1;
      libc_memcpy(vmm.abort_msg, (void *)(uintptr_t)c->arg[0], n);
      vmm.abort_msg[n] = 0;
      vmm.exit_code = -1;
    } else {
      vmm.exit_code = (int)c->arg[0];
    }
    if (vmm.exit_jmp) longjmp(*vmm.exit_jmp, 1);
    fprintf(stderr, "fake VMM: unexpected %s (%s)\n", c->op == LS_OP_EXIT ? "exit" : "abort", vmm.abort_msg);
    exit(2);
  case LS_OP_NET_ATTACH:
    if (!valid_cap(c->arg[1]) || !valid_cap(c->arg[3]) || (c->arg[0] & 7) || (c->arg[2] & 7)) {
      c->result = LS_EINVAL;
      break;
    }
    vmm.rx = (struct ls_ring *)(uintptr_t)c->arg[0];
    vmm.rx_cap = c->arg[1];
    vmm.tx = (struct ls_ring *)(uintptr_t)c->arg[2];
    vmm.tx_cap = c->arg[3];
    break;
  case LS_OP_NET_FLUSH:
    if (!vmm.tx) c->result = LS_ENODEV;
    else vmm_tx_drain();
    break;
  case LS_OP_CLOCK:
    vmm.mono += 100;
    c->out[0] = vmm.mono;
    c->out[1] = 1700000000ull * 1000000000ull + vmm.mono;
    break;
  case LS_OP_ENTROPY:
    if (c->arg[1] > LS_ENTROPY_MAX) {
      c->result = LS_EINVAL;
      break;
    }
    for (uint64_t i = 0; i < c->arg[1]; i++) ((uint8_t *)(uintptr_t)c->arg[0])[i] = (uint8_t)rnd();
    break;
  case LS_OP_WAIT: {
    uint64_t now = 0;
    c->out[0] = (uint64_t)vmm_wait(c->arg[0], &now);
    c->out[1] = now;
    break;
  }
  case LS_OP_BLOCK_READ:
  case LS_OP_BLOCK_WRITE: {
    uint64_t off = c->arg[0], len = c->arg[2];
    vmm.block_calls++;
    if (len > vmm.block_max_len) vmm.block_max_len = len;
    if (!vmm.disk) c->result = LS_ENODEV;
    else if (off % 512 || len % 512 || len > LS_BLOCK_MAX_IO || off > vmm.disk_size || len > vmm.disk_size - off)
      c->result = LS_EINVAL;
    else if (c->op == LS_OP_BLOCK_READ) libc_memcpy((void *)(uintptr_t)c->arg[1], vmm.disk + off, len);
    else libc_memcpy(vmm.disk + off, (void *)(uintptr_t)c->arg[1], len);
    break;
  }
  case LS_OP_BLOCK_FLUSH:
    if (!vmm.disk) c->result = LS_ENODEV;
    break;
  default:
    c->result = LS_ENOSYS;
  }
}

/* Runs `body` expecting it to exit or abort; returns 1 if it did. */
#define EXPECT_EXIT(body)                 \
  ({                                      \
    jmp_buf env_;                         \
    int exited_ = 0;                      \
    vmm.exit_jmp = &env_;                 \
    if (setjmp(env_) == 0) {              \
      body;                               \
    } else {                              \
      exited_ = 1;                        \
    }                                     \
    vmm.exit_jmp = NULL;                  \
    exited_;                              \
  })

/* ---- Strings and numbers ---------------------------------------------------- */

static void test_strings(void) {
  static uint8_t a[600], b[600], c[600];
  int ok = 1;
  for (int iter = 0; iter < 20000 && ok; iter++) {
    size_t n = rnd_below(300), so = rnd_below(150), dof = rnd_below(150);
    for (size_t i = 0; i < sizeof a; i++) a[i] = b[i] = (uint8_t)rnd();
    /* memmove in both directions, overlapping or not, against libc. */
    libc_memmove(a + dof, a + so, n);
    memmove(b + dof, b + so, n);
    ok &= libc_memcmp(a, b, sizeof a) == 0;
    memcpy(c, a, n);
    ok &= libc_memcmp(c, a, n) == 0;
    int v = (int)rnd_below(256);
    libc_memset(a + so, v, n);
    memset(b + so, v, n);
    ok &= libc_memcmp(a, b, sizeof a) == 0;
    /* memcmp sign with a difference at a random place. */
    libc_memcpy(c, a, 300);
    size_t at = rnd_below(300);
    c[at] = (uint8_t)rnd();
    ok &= sign(memcmp(a, c, 300)) == sign(libc_memcmp(a, c, 300));
    ok &= memchr(a, c[at], 300) == libc_memchr(a, c[at], 300);
  }
  CHECK(ok, "memcpy/memmove/memset/memcmp/memchr differ from libc");

  const char *words[] = {"", "a", "ab", "abc", "abd", "ABC", "hello world", "hello", "world", "lo w", "o", "zz"};
  const size_t nw = sizeof words / sizeof words[0];
  ok = 1;
  for (size_t i = 0; i < nw; i++) {
    ok &= strlen(words[i]) == libc_strlen(words[i]);
    ok &= strnlen(words[i], 2) == (libc_strlen(words[i]) < 2 ? libc_strlen(words[i]) : 2);
    for (size_t j = 0; j < nw; j++) {
      ok &= sign(strcmp(words[i], words[j])) == sign(libc_strcmp(words[i], words[j]));
      ok &= sign(strncmp(words[i], words[j], 2)) == sign(libc_strncmp(words[i], words[j], 2));
      ok &= sign(strcasecmp(words[i], words[j])) == sign(libc_strcasecmp(words[i], words[j]));
      ok &= sign(strncasecmp(words[i], words[j], 3)) == sign(libc_strncasecmp(words[i], words[j], 3));
      ok &= strstr(words[i], words[j]) == libc_strstr(words[i], words[j]);
    }
    for (int ch = 0; ch < 128; ch++) {
      ok &= strchr(words[i], ch) == libc_strchr(words[i], ch);
      ok &= strrchr(words[i], ch) == libc_strrchr(words[i], ch);
    }
  }
  CHECK(ok, "string functions differ from libc");

  char small[4];
  CHECK(ls_strlcpy(small, "abcdef", sizeof small) == 6 && libc_strcmp(small, "abc") == 0, "strlcpy");
  const char hay[] = "xxabcabdxx";
  CHECK(ls_memmem(hay, 10, "abd", 3) == hay + 5 && ls_memmem(hay, 10, "abe", 3) == NULL &&
            ls_memmem(hay, 10, "", 0) == hay && ls_memmem(hay, 2, "xxa", 3) == NULL,
        "memmem");
}

static int parses_i64(const char *s, ls_i64 want) {
  ls_i64 v = 12345;
  return ls_parse_i64(s, libc_strlen(s), &v) == 0 && v == want;
}
static int rejects_i64(const char *s) {
  ls_i64 v = 12345;
  return ls_parse_i64(s, libc_strlen(s), &v) == LS_EINVAL && v == 12345;
}

static void test_numbers(void) {
  CHECK(parses_i64("0", 0) && parses_i64("-0", 0) && parses_i64("+17", 17) && parses_i64("-17", -17), "small");
  CHECK(parses_i64("9223372036854775807", INT64_MAX), "i64 max");
  CHECK(parses_i64("-9223372036854775808", INT64_MIN), "i64 min");
  CHECK(parses_i64("000000000000000000000000042", 42), "leading zeros");
  CHECK(rejects_i64("9223372036854775808") && rejects_i64("-9223372036854775809"), "i64 overflow");
  CHECK(rejects_i64("99999999999999999999999") && rejects_i64("18446744073709551616"), "u64 overflow");
  CHECK(rejects_i64("") && rejects_i64("-") && rejects_i64("+") && rejects_i64("12a") && rejects_i64(" 1") &&
            rejects_i64("1 ") && rejects_i64("--1") && rejects_i64("0x10"),
        "syntax errors");
  ls_i64 v;
  CHECK(ls_parse_i64("1234", 2, &v) == 0 && v == 12, "length-bounded");
  ls_u64 u;
  CHECK(ls_parse_u64("18446744073709551615", 20, &u) == 0 && u == UINT64_MAX, "u64 max");
  CHECK(ls_parse_u64("18446744073709551616", 20, &u) == LS_EINVAL, "u64 overflow");
  CHECK(ls_parse_u64("-1", 2, &u) == LS_EINVAL && ls_parse_u64("+1", 2, &u) == 0 && u == 1, "u64 sign");
  CHECK(ls_parse_hex_u64("ffFF0123456789ab", 16, &u) == 0 && u == 0xffff0123456789abull, "hex");
  CHECK(ls_parse_hex_u64("1ffFF0123456789ab", 17, &u) == LS_EINVAL && ls_parse_hex_u64("g", 1, &u) == LS_EINVAL &&
            ls_parse_hex_u64("", 0, &u) == LS_EINVAL,
        "hex errors");

  char buf[LS_FMT_INT_MAX], ref[64];
  int ok = 1;
  for (int i = 0; i < 100000 && ok; i++) {
    int64_t x = (int64_t)(rnd() >> rnd_below(64));
    if (i & 1) x = -x;
    if (i == 0) x = INT64_MIN;
    if (i == 2) x = 0;
    size_t n = ls_format_i64(buf, x);
    snprintf(ref, sizeof ref, "%lld", (long long)x);
    ok &= libc_strcmp(buf, ref) == 0 && n == libc_strlen(ref);
    ls_i64 back;
    ok &= ls_parse_i64(buf, n, &back) == 0 && back == x;
    uint64_t y = rnd() >> rnd_below(64);
    if (i == 4) y = UINT64_MAX;
    n = ls_format_u64(buf, y);
    snprintf(ref, sizeof ref, "%llu", (unsigned long long)y);
    ok &= libc_strcmp(buf, ref) == 0 && n == libc_strlen(ref);
  }
  CHECK(ok, "format/parse round trip (last: %s vs %s)", buf, ref);
}

/* ---- Formatting ---------------------------------------------------------------- */

#define FMT_CASE(...)                                                                 \
  do {                                                                                \
    char mine_[256], ref_[256];                                                       \
    int a_ = ls_snprintf(mine_, sizeof mine_, __VA_ARGS__);                           \
    int b_ = snprintf(ref_, sizeof ref_, __VA_ARGS__);                                \
    CHECK(a_ == b_ && libc_strcmp(mine_, ref_) == 0, "format %s: got \"%s\" (%d), want \"%s\" (%d)", \
          #__VA_ARGS__, mine_, a_, ref_, b_);                                         \
  } while (0)

static void test_format(void) {
  FMT_CASE("plain");
  FMT_CASE("%d %i %u", 0, -1, 4000000000u);
  FMT_CASE("%d %d", INT32_MIN, INT32_MAX);
  FMT_CASE("%x %X %o %#x %#o %#X", 0xdeadbeefu, 0xabcu, 8u, 255u, 8u, 0u);
  FMT_CASE("%lx %lu %ld", 0xfedcba9876543210ul, ULONG_MAX, -5l);
  FMT_CASE("%llu %lld %lld", 18446744073709551615ull, -9223372036854775807ll - 1, 42ll);
  FMT_CASE("%zu %zd %zx", (size_t)123456789012ull, (ssize_t)-77, (size_t)255);
  FMT_CASE("[%5d] [%-5d] [%05d] [%+d] [% d] [%+05d]", 42, 42, 42, 42, 42, -42);
  FMT_CASE("[%8x] [%08x] [%-8x] [%.4x] [%8.4x]", 0xbeefu, 0xbeefu, 0xbeefu, 0xbu, 0xbu);
  FMT_CASE("[%.0d] [%.0u] [%5.0d] [%.3d] [%08.3d]", 0, 0u, 0, -7, 5);
  FMT_CASE("[%s] [%10s] [%-10s] [%.2s] [%.*s] [%*s] [%-*s|]", "abc", "abc", "abc", "abc", 4, "abcdefg", 6, "ab", 6,
           "ab");
  FMT_CASE("[%c] [%3c] [%-3c]", 'x', 'y', 'z');
  FMT_CASE("%% %%|");
  FMT_CASE("[%p] [%20p] [%-20p|]", (void *)0x1234, (void *)0xdeadbeefull, (void *)0x10);
  FMT_CASE("%hhd %hhu %hd %hu", (signed char)-44, (unsigned char)200, (short)-3, (unsigned short)65000);
  FMT_CASE("%jd %td", (intmax_t)-1, (ptrdiff_t)-2);
  FMT_CASE("[%*d] [%-*d]", -6, 1, 4, 2);

  char small[8];
  int n = ls_snprintf(small, sizeof small, "%s", "0123456789");
  CHECK(n == 10 && libc_strcmp(small, "0123456") == 0, "truncation: \"%s\" %d", small, n);
  small[0] = 'Q';
  n = ls_snprintf(small, 0, "%d", 12345);
  CHECK(n == 5 && small[0] == 'Q', "size 0 writes nothing");
  n = ls_snprintf(small, 1, "%d", 12345);
  CHECK(n == 5 && small[0] == 0, "size 1 is just the NUL");
  char big[4000];
  n = ls_snprintf(big, sizeof big, "%3000d|", 1);
  CHECK(n == 3001 && big[2999] == '1' && big[3000] == '|' && big[0] == ' ', "wide field");
  n = ls_snprintf(big, sizeof big, "%s", (char *)NULL);
  CHECK(libc_strcmp(big, "(null)") == 0, "null string");
  const char *volatile dangling = "50%", *volatile unknown = "%q%d"; /* past -Wformat */
  n = ls_snprintf(big, sizeof big, dangling, 0);
  CHECK(libc_strcmp(big, "50%") == 0, "dangling percent: %s", big);
  n = ls_snprintf(big, sizeof big, unknown, 5);
  CHECK(libc_strcmp(big, "%q5") == 0, "unknown conversion: %s", big);

  /* printf: one console record per call, split only past 2 KiB. */
  vmm.console_len = 0;
  vmm.console_calls = 0;
  ls_printf("hello %s %d\n", "console", 7);
  CHECK(vmm.console_calls == 1 && libc_strcmp(vmm.console, "hello console 7\n") == 0, "printf: %s",
        vmm.console);
  vmm.console_len = 0;
  vmm.console_calls = 0;
  n = ls_printf("%5000d", 3);
  CHECK(n == 5000 && vmm.console_len == 5000 && vmm.console_calls == 3 && vmm.console[4999] == '3',
        "long printf: %u calls", vmm.console_calls);
  vmm.console_len = 0;
  CHECK(ls_puts("puts\n") == 0 && libc_strcmp(vmm.console, "puts\n") == 0, "puts");
}

/* ---- Hypercall wrappers ------------------------------------------------------- */

static void test_calls(void) {
  CHECK(ls_nop() == 0 && vmm.calls[LS_OP_NOP] == 1, "nop");
  CHECK(ls_call4(99, 0, 0, 0, 0) == LS_ENOSYS, "unknown op");
  static char big[LS_CONSOLE_MAX + 1];
  CHECK(ls_console_write(big, sizeof big) == LS_EINVAL, "console too long");

  ls_u64 m1, w1, m2, w2;
  CHECK(ls_clock(&m1, &w1) == 0 && ls_clock(&m2, &w2) == 0 && m2 > m1 && w1 > 1577836800ull * 1000000000ull,
        "clock");
  CHECK(ls_clock(NULL, NULL) == 0 && ls_monotonic_ns() > m2, "clock with NULL outputs");

  static uint8_t ent[10000];
  unsigned before = vmm.calls[LS_OP_ENTROPY];
  CHECK(ls_entropy(ent, sizeof ent) == 0 && vmm.calls[LS_OP_ENTROPY] - before == 3, "entropy chunks");
  CHECK(ls_call4(LS_OP_ENTROPY, (uintptr_t)ent, 4097, 0, 0) == LS_EINVAL, "entropy too long");

  ls_u64 now = 0;
  ls_i64 ready = ls_wait(LS_WAIT_POLL, &now);
  CHECK(ready == (ls_i64)LS_READY_TIMEOUT && now > 0, "wait poll");
  ls_u64 deadline = now + 20 * LS_NS_PER_MS;
  ready = ls_wait(deadline, &now);
  CHECK(ready == (ls_i64)LS_READY_TIMEOUT && now >= deadline, "wait deadline");
  ls_u64 t0 = ls_monotonic_ns();
  CHECK(ls_sleep_ns(5 * LS_NS_PER_MS) == 0 && ls_monotonic_ns() >= t0 + 5 * LS_NS_PER_MS, "sleep");

  /* Block: no disk, then a 3 MiB disk. */
  static uint8_t io[3 << 20];
  CHECK(ls_block_read(0, io, 512) == LS_ENODEV && ls_block_flush() == LS_ENODEV, "no disk");
  vmm.disk_size = 3 << 20;
  vmm.disk = calloc(1, vmm.disk_size);
  for (size_t i = 0; i < sizeof io; i++) io[i] = (uint8_t)(i * 31 + 7);
  vmm.block_calls = 0;
  vmm.block_max_len = 0;
  CHECK(ls_block_write(0, io, sizeof io) == 0 && vmm.block_calls == 3 && vmm.block_max_len == LS_BLOCK_MAX_IO,
        "block write chunks (%u calls)", vmm.block_calls);
  CHECK(libc_memcmp(vmm.disk, io, sizeof io) == 0, "block write data");
  libc_memset(io, 0, sizeof io);
  CHECK(ls_block_read(512, io, (2 << 20) + 1024) == 0 && io[0] == (uint8_t)(512 * 31 + 7) &&
            libc_memcmp(io, vmm.disk + 512, (2 << 20) + 1024) == 0,
        "block read");
  CHECK(ls_block_read(1, io, 512) == LS_EINVAL && ls_block_read(vmm.disk_size, io, 512) == LS_EINVAL &&
            ls_block_flush() == 0,
        "block errors");

  /* Exit and abort. */
  CHECK(EXPECT_EXIT(ls_exit(5)) && vmm.exit_code == 5, "exit code");
  CHECK(EXPECT_EXIT(ls_abort("boom")) && vmm.exit_code == -1 && libc_strcmp(vmm.abort_msg, "boom") == 0,
        "abort message");
  CHECK(EXPECT_EXIT(ls_abortf("x=%d", 42)) && libc_strcmp(vmm.abort_msg, "x=42") == 0, "abortf");
}

/* ---- Heap ------------------------------------------------------------------------ */

#define HEAP_BYTES (64u << 20)
static uint8_t *heap_mem;

struct slot {
  uint8_t *p;
  size_t n;
  uint8_t tag;
};

static int slot_ok(const struct slot *s) {
  for (size_t i = 0; i < s->n; i++)
    if (s->p[i] != (uint8_t)(s->tag + i)) return 0;
  return 1;
}
static void slot_fill(struct slot *s) {
  for (size_t i = 0; i < s->n; i++) s->p[i] = (uint8_t)(s->tag + i);
}

static size_t random_size(void) {
  uint64_t r = rnd_below(1000);
  if (r < 700) return rnd_below(128);
  if (r < 950) return rnd_below(4096);
  if (r < 997) return rnd_below(65536);
  return rnd_below(1 << 20);
}

static void test_heap(void) {
  heap_mem = aligned_alloc(4096, HEAP_BYTES);
  CHECK(ls_heap_init(heap_mem + 8, heap_mem + 8) == 0 && ls_malloc(1) == NULL, "empty heap");
  CHECK(ls_heap_init(heap_mem + 100, heap_mem + 50) == LS_EINVAL, "inverted range");
  CHECK(ls_heap_init(heap_mem + 3, heap_mem + HEAP_BYTES) == 0, "init");
  struct ls_heap_stats s0;
  ls_heap_stats(&s0);
  CHECK(s0.in_use == 0 && s0.allocations == 0 && s0.free == s0.total && s0.total > HEAP_BYTES - 64, "fresh stats");

  /* Random stress with content checks and realloc. */
  enum { SLOTS = 2000 };
  static struct slot slots[SLOTS];
  int ok = 1, aligned = 1, checks_ok = 1;
  for (int op = 0; op < 200000 && ok; op++) {
    struct slot *s = &slots[rnd_below(SLOTS)];
    if (s->p) ok &= slot_ok(s);
    uint64_t what = rnd_below(10);
    if (!s->p) {
      s->n = random_size();
      s->tag = (uint8_t)rnd();
      s->p = what < 2 ? ls_calloc(1, s->n) : ls_malloc(s->n);
      if (!s->p) { ok = 0; break; }
      if (what < 2)
        for (size_t i = 0; i < s->n; i++) ok &= s->p[i] == 0;
      aligned &= ((uintptr_t)s->p & 15) == 0;
      ok &= ls_malloc_usable_size(s->p) >= s->n;
      slot_fill(s);
    } else if (what < 3) {
      size_t n = random_size();
      uint8_t *q = ls_realloc(s->p, n);
      if (n == 0) { /* realloc(p, 0) frees */
        ok &= q == NULL;
        s->p = NULL;
        continue;
      }
      if (!q) { ok = 0; break; }
      aligned &= ((uintptr_t)q & 15) == 0;
      size_t keep = n < s->n ? n : s->n;
      for (size_t i = 0; i < keep; i++) ok &= q[i] == (uint8_t)(s->tag + i);
      s->p = q;
      s->n = n;
      slot_fill(s);
    } else {
      ls_free(s->p);
      s->p = NULL;
    }
    if (op % 20000 == 0) checks_ok &= ls_heap_check() == 0;
  }
  CHECK(ok, "heap stress: contents preserved");
  CHECK(aligned, "heap stress: 16-byte alignment");
  CHECK(checks_ok && ls_heap_check() == 0, "heap stress: structure");

  /* memalign, freed with everything else. */
  void *al[12];
  int al_ok = 1;
  for (int i = 0; i < 12; i++) {
    size_t align = (size_t)32 << i;
    al[i] = ls_memalign(align, 100 + (size_t)i * 1000);
    al_ok &= al[i] && ((uintptr_t)al[i] & (align - 1)) == 0;
    if (al[i]) libc_memset(al[i], 0xAB, 100 + (size_t)i * 1000);
  }
  CHECK(al_ok && ls_heap_check() == 0, "memalign");
  CHECK(ls_memalign(3, 10) == NULL, "memalign rejects non-power-of-two");
  for (int i = 0; i < 12; i++) ls_free(al[i]);

  for (int i = 0; i < SLOTS; i++) {
    ls_free(slots[i].p);
    slots[i].p = NULL;
  }
  struct ls_heap_stats s1;
  ls_heap_stats(&s1);
  CHECK(s1.in_use == 0 && s1.allocations == 0 && ls_heap_check() == 0, "all freed: in_use=%zu", s1.in_use);
  /* Everything coalesced: one allocation of almost the whole heap fits. */
  void *whole = ls_malloc(s1.total - 64);
  CHECK(whole != NULL, "full coalescing");
  ls_free(whole);

  /* Reuse: millions of allocate/free cycles in a bounded heap. */
  uint8_t *small_heap = heap_mem + (HEAP_BYTES - (1 << 20));
  CHECK(ls_heap_init(small_heap, small_heap + (1 << 20)) == 0, "small heap");
  void *live[64] = {0};
  int reuse_ok = 1;
  for (int i = 0; i < 1000000 && reuse_ok; i++) {
    int k = (int)rnd_below(64);
    ls_free(live[k]);
    live[k] = ls_malloc(rnd_below(2000) + 1);
    reuse_ok &= live[k] != NULL;
  }
  CHECK(reuse_ok && ls_heap_check() == 0, "freed memory is reused");
  for (int k = 0; k < 64; k++) ls_free(live[k]);

  /* Out of memory: NULL, never a crash; then everything comes back. */
  int count = 0;
  void **all = malloc(sizeof(void *) * 100000);
  while (count < 100000 && (all[count] = ls_malloc(1000)) != NULL) count++;
  CHECK(count > 900 && count < 1100, "OOM after %d allocations", count);
  CHECK(ls_malloc((size_t)1 << 40) == NULL && ls_calloc((size_t)1 << 33, (size_t)1 << 33) == NULL &&
            ls_malloc(SIZE_MAX) == NULL && ls_realloc(all[0], (size_t)1 << 40) == NULL,
        "huge requests");
  for (int i = 0; i < count; i += 2) ls_free(all[i]);
  for (int i = 1; i < count; i += 2) ls_free(all[i]);
  free(all);
  ls_heap_stats(&s1);
  CHECK(s1.in_use == 0 && ls_heap_check() == 0 && (whole = ls_malloc(s1.total - 64)) != NULL, "OOM recovery");
  ls_free(whole);

  /* Realloc in place: growing into the top and into a free successor. */
  uint8_t *p = ls_malloc(100), *q = ls_malloc(100), *r = ls_malloc(100);
  ls_free(q);
  uint8_t *p2 = ls_realloc(p, 200);
  CHECK(p2 == p, "realloc grows into the free neighbour");
  uint8_t *r2 = ls_realloc(r, 5000);
  CHECK(r2 == r, "realloc grows into the top");
  CHECK(ls_realloc(r2, 10) == r2 && ls_heap_check() == 0, "realloc shrinks in place");
  ls_free(p2);
  ls_free(r2);

  /* Invalid frees abort the guest. */
  uint8_t *x = ls_malloc(64);
  ls_free(x);
  CHECK(EXPECT_EXIT(ls_free(x)) && libc_strstr(vmm.abort_msg, "heap:") != NULL, "double free aborts");
  uint8_t *y = ls_malloc(64);
  CHECK(EXPECT_EXIT(ls_free(y + 16)), "interior pointer aborts");
  CHECK(EXPECT_EXIT(ls_free(heap_mem)), "foreign pointer aborts");
  ls_free(y);
  ls_free(NULL);

  /* The rest of the tests run on the big heap again. */
  CHECK(ls_heap_init(heap_mem, heap_mem + HEAP_BYTES - (1 << 20)) == 0, "re-init");
}

/* ---- Net rings ------------------------------------------------------------------- */

static void reset_streams(void) {
  for (int i = 0; i < MAX_CONNS; i++) {
    vmm.stream_len[i] = 0;
    vmm.closed[i] = 0;
  }
}

/* rx: the fake VMM produces random messages that wrap with PAD and with
 * the 8-byte skip; the SDK consumer must return exactly them, in order. */
static void test_rx(void) {
  static uint8_t payload[4096];
  int ok = 1, corrupt = 0;
  uint64_t delivered = 0, seen = 0;
  struct ls_net_event ev;
  uint8_t expect_seq = 0, fill_seq = 0;
  for (int round = 0; round < 20000 && ok; round++) {
    /* Push a random batch straight into the ring, as a WAIT exit would. */
    int batch = (int)rnd_below(8) + 1;
    for (int i = 0; i < batch; i++) {
      uint32_t len = (uint32_t)(rnd_below(3) == 0 ? rnd_below(24) : rnd_below(vmm.rx_cap / 2 - 16));
      for (uint32_t k = 0; k < len; k++) payload[k] = (uint8_t)(fill_seq + k);
      struct event e = {(uint32_t)(delivered % 7), (uint16_t)(LS_MSG_OPEN + delivered % 3), len, payload};
      if (!vmm_rx_push(&e)) break;
      fill_seq = (uint8_t)(fill_seq + 1);
      delivered++;
    }
    /* Consume some or all of it. */
    int take = (int)rnd_below(10);
    for (int i = 0; i < take; i++) {
      int r = ls_net_next(&ev);
      if (r < 0) corrupt = 1;
      if (r <= 0) break;
      ok &= ev.conn == seen % 7 && ev.type == LS_MSG_OPEN + seen % 3;
      for (uint32_t k = 0; k < ev.length; k++) ok &= ev.data[k] == (uint8_t)(expect_seq + k);
      expect_seq = (uint8_t)(expect_seq + 1);
      seen++;
      if (rnd_below(2)) ls_net_consume(); /* explicit or implicit consumption */
    }
  }
  int r;
  while ((r = ls_net_next(&ev)) > 0) {
    for (uint32_t k = 0; k < ev.length; k++) ok &= ev.data[k] == (uint8_t)(expect_seq + k);
    expect_seq = (uint8_t)(expect_seq + 1);
    seen++;
  }
  ls_net_consume();
  CHECK(ok && !corrupt && r == 0, "rx messages intact");
  CHECK(seen == delivered && vmm.rx->tail == vmm.rx->head, "rx all consumed: %llu of %llu",
        (unsigned long long)seen, (unsigned long long)delivered);
  CHECK(vmm.rx_pads > 100 && vmm.rx_skips > 10, "rx wrap paths exercised: pads=%u skips=%u", vmm.rx_pads,
        vmm.rx_skips);
  CHECK(!ls_net_pending(), "rx empty");
}

/* tx: random sends (including ones far larger than the ring) and closes;
 * the fake VMM's consumer reassembles each connection's byte stream. */
static void test_tx(void) {
  reset_streams();
  static uint8_t sent[MAX_CONNS][1 << 17];
  static size_t sent_len[MAX_CONNS];
  static uint8_t buf[3 * 8192 + 100];
  int ok = 1;
  unsigned flushes_before = vmm.calls[LS_OP_NET_FLUSH];
  for (int round = 0; round < 30000 && ok; round++) {
    uint32_t conn = (uint32_t)rnd_below(MAX_CONNS - 1);
    size_t len = rnd_below(5) == 0 ? rnd_below(sizeof buf) : rnd_below(200);
    if (sent_len[conn] + len > sizeof sent[0]) continue;
    for (size_t i = 0; i < len; i++) buf[i] = (uint8_t)rnd();
    ok &= ls_net_send(conn, buf, len) == 0;
    libc_memcpy(sent[conn] + sent_len[conn], buf, len);
    sent_len[conn] += len;
    if (rnd_below(50) == 0) ok &= ls_net_flush() == 0;
  }
  CHECK(ls_net_close(MAX_CONNS - 1) == 0, "close");
  vmm_tx_drain();
  int same = 1;
  for (int c = 0; c < MAX_CONNS - 1; c++)
    same &= vmm.stream_len[c] == sent_len[c] && (!sent_len[c] || !libc_memcmp(vmm.stream[c], sent[c], sent_len[c]));
  CHECK(ok && same, "tx streams arrive intact and in order");
  CHECK(vmm.closed[MAX_CONNS - 1] == 1, "tx close delivered");
  CHECK(vmm.tx_errors == 0, "tx follows every ring rule (%u violations)", vmm.tx_errors);
  CHECK(vmm.tx_pads > 100 && vmm.tx_skips > 0, "tx wrap paths exercised: pads=%u skips=%u", vmm.tx_pads,
        vmm.tx_skips);
  CHECK(vmm.calls[LS_OP_NET_FLUSH] - flushes_before > 100, "tx flushes when full");
  CHECK(ls_net_tx_queued() == 0, "tx drained");
  CHECK(ls_net_send(3, buf, 0) == 0, "empty send");

  /* A VMM that stops draining: the send fails instead of spinning. */
  vmm.drain_mode = 1;
  ls_i32 r = 0;
  for (int i = 0; i < 100 && r == 0; i++) r = ls_net_send(1, buf, 1000);
  CHECK(r == LS_EIO, "no drain -> LS_EIO (%d)", r);
  vmm.drain_mode = 0;
  vmm_tx_drain();
  CHECK(vmm.tx_errors == 0 && ls_net_tx_queued() == 0, "recovers after drain");
}

/* The event loop: an echo server whose input comes through WAIT. */
static ls_u64 echo_msgs, echo_opens, echo_closes;
static void echo_open(void *ctx, ls_u32 conn, const char *peer, ls_u32 len) {
  (void)ctx, (void)conn;
  echo_opens += len == 14 && libc_memcmp(peer, "10.0.0.1:40000", 14) == 0;
}
static void echo_data(void *ctx, ls_u32 conn, const ls_u8 *data, ls_u32 len) {
  (void)ctx;
  echo_msgs++;
  /* Sending the payload while it still sits in the rx ring is allowed. */
  if (ls_net_send(conn, data, len) != 0) abort();
}
static void echo_closed(void *ctx, ls_u32 conn) {
  (void)ctx;
  echo_closes++;
  ls_net_close(conn);
}

static void test_event_loop(void) {
  reset_streams();
  static uint8_t expect[MAX_CONNS][1 << 18];
  static size_t expect_len[MAX_CONNS];
  static uint8_t msg[5000];
  unsigned queued = 0;
  for (uint32_t c = 1; c <= 8; c++) {
    queued += vmm_queue(c, LS_MSG_OPEN, "10.0.0.1:40000", 14);
  }
  for (int i = 0; i < 3000; i++) {
    uint32_t c = 1 + (uint32_t)rnd_below(8);
    uint32_t len = (uint32_t)rnd_below(i % 10 == 0 ? sizeof msg : 300) + 1;
    if (expect_len[c] + len > sizeof expect[0]) continue;
    for (uint32_t k = 0; k < len; k++) msg[k] = (uint8_t)rnd();
    queued += vmm_queue(c, LS_MSG_DATA, msg, len);
    libc_memcpy(expect[c] + expect_len[c], msg, len);
    expect_len[c] += len;
    queued++;
  }
  for (uint32_t c = 1; c <= 8; c++) vmm_queue(c, LS_MSG_CLOSED, NULL, 0);

  struct ls_net_handlers h = {echo_open, echo_data, echo_closed, NULL};
  unsigned waits_before = vmm.calls[LS_OP_WAIT];
  int turns = 0;
  while (vmm.ev_head != vmm.ev_tail || ls_net_pending()) {
    ls_i64 r = ls_net_poll(&h, LS_WAIT_FOREVER, NULL);
    if (r < 0 || ++turns > 100000) break;
  }
  ls_u64 now;
  ls_net_poll(&h, LS_WAIT_POLL, &now); /* sends the last replies */
  int same = 1;
  for (uint32_t c = 1; c <= 8; c++)
    same &= vmm.stream_len[c] == expect_len[c] && !libc_memcmp(vmm.stream[c], expect[c], expect_len[c]) &&
            vmm.closed[c];
  CHECK(same && vmm.tx_errors == 0, "echo through the event loop");
  CHECK(echo_opens == 8 && echo_closes == 8, "open/closed handlers: %llu %llu", (unsigned long long)echo_opens,
        (unsigned long long)echo_closes);
  unsigned waits = vmm.calls[LS_OP_WAIT] - waits_before;
  CHECK(waits < queued / 4, "batched: %u waits for %u events", waits, queued);

  /* Exit flushes what is queued. */
  reset_streams();
  ls_net_send(5, "bye", 3);
  CHECK(EXPECT_EXIT(ls_exit(0)) && vmm.stream_len[5] == 3, "exit flushes tx");
  ls__exit_hook = NULL; /* the hook ran once; the test process keeps going */
}

static void test_rx_corrupt(void) {
  struct ls_net_event ev;
  ls_u64 head = vmm.rx->head;
  CHECK(head == vmm.rx->tail, "rx empty before corruption tests");
  vmm.rx->head = head + vmm.rx_cap + 8; /* more than the capacity */
  CHECK(ls_net_next(&ev) == LS_ECORRUPT, "rx over capacity");
  vmm.rx->head = head + 12; /* not a multiple of 8 */
  CHECK(ls_net_next(&ev) == LS_ECORRUPT, "rx misaligned head");
  /* A message claiming more payload than the ring holds. */
  uint8_t *data = (uint8_t *)(vmm.rx + 1);
  uint64_t off = head & (vmm.rx_cap - 1);
  if (vmm.rx_cap - off >= 32) {
    struct ls_msg m = {1, LS_MSG_DATA, 0, 4000, 0};
    libc_memcpy(data + off, &m, sizeof m);
    vmm.rx->head = head + 32;
    CHECK(ls_net_next(&ev) == LS_ECORRUPT, "rx length past head");
    m.length = 8;
    m.type = 9;
    libc_memcpy(data + off, &m, sizeof m);
    CHECK(ls_net_next(&ev) == LS_ECORRUPT, "rx unknown type");
    struct ls_net_handlers h = {0};
    CHECK(ls_net_dispatch(&h) == LS_ECORRUPT, "dispatch reports corruption");
  }
  vmm.rx->head = head;
  CHECK(ls_net_next(&ev) == 0, "rx fine again");
}

static void test_net(void) {
  struct ls_net_event ev;
  CHECK(ls_net_next(&ev) == LS_ESTATE && ls_net_send(1, "x", 1) == LS_ESTATE && !ls_net_attached(),
        "not attached");
  CHECK(ls_net_init(5000, 4096) == LS_EINVAL && ls_net_init(4096, 2048) == LS_EINVAL &&
            ls_net_init(4096, LS_RING_MAX * 2) == LS_EINVAL,
        "capacity validation");
  CHECK(ls_net_init(4096, 8192) == 0 && ls_net_attached(), "attach");
  CHECK(vmm.rx_cap == 4096 && vmm.tx_cap == 8192 && ((uintptr_t)vmm.rx & 4095) == 0 &&
            ((uintptr_t)vmm.tx & 4095) == 0 && vmm.rx->head == 0 && vmm.tx->tail == 0,
        "rings page aligned and zeroed");
  CHECK(ls_net_init(4096, 4096) == LS_ESTATE, "attach once");
  test_rx();
  test_tx();
  test_event_loop();
  test_rx_corrupt();
}

int main(void) {
  static struct ls_boot_info boot;
  boot.magic = LS_BOOT_MAGIC;
  boot.abi_version = LS_ABI_VERSION;
  libc_memcpy(boot.args, "host test", 10);
  boot.args_length = 9;
  ls__boot = &boot;

  test_strings();
  test_numbers();
  test_format();
  test_heap(); /* before anything that allocates */
  test_calls();
  test_net();
  CHECK(libc_strcmp(ls_args(), "host test") == 0 && ls_boot_info() == &boot, "boot info accessors");

  printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
