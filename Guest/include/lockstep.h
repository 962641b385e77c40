/*
 * lockstep.h — the Lockstep guest SDK.
 *
 * A freestanding C runtime for Lockstep guests: entry, hypercall wrappers,
 * a heap allocator, strings, formatted output and the net-ring helpers.
 * The ABI itself (layouts, op codes, results) is lockstep_abi.h, which this
 * header includes; README.md explains how to write a guest.
 *
 * A guest defines
 *
 *     int ls_main(const struct ls_boot_info *boot);
 *
 * and links with the SDK. The SDK's entry point validates the boot info,
 * sets up the heap and calls ls_main; its return value is the exit code.
 *
 * Conventions: functions that perform a hypercall return the descriptor's
 * `result` (LS_OK or a negative LS_E* code). The SDK adds a few error codes
 * of its own below the ABI's (LS_ENOMEM ...), never returned by the VMM.
 */
#ifndef LOCKSTEP_H
#define LOCKSTEP_H

#include "lockstep_abi.h"

/* Compiler-provided freestanding headers (no libc involved). */
#include <stdarg.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Build-time checks of the ABI layout ------------------------------- */

_Static_assert(sizeof(struct ls_call) == 64, "struct ls_call layout");
_Static_assert(sizeof(struct ls_ring) == 64, "struct ls_ring layout");
_Static_assert(sizeof(struct ls_msg) == LS_MSG_HEADER, "struct ls_msg layout");
_Static_assert(sizeof(struct ls_boot_info) <= 4096, "boot info fits a page");

/* ---- SDK-level constants ------------------------------------------------ */

/* Errors produced by the SDK itself (never by the VMM). */
#define LS_ENOMEM (-32)  /* the heap is exhausted */
#define LS_ESTATE (-33)  /* call out of order (e.g. net not initialised) */
#define LS_ECORRUPT (-34) /* a ring's indices or a message are malformed */

/* LS_OP_WAIT deadlines. */
#define LS_WAIT_POLL 0ull       /* return at once */
#define LS_WAIT_FOREVER (~0ull) /* no deadline: return only on input */

#define LS_NS_PER_US 1000ull
#define LS_NS_PER_MS 1000000ull
#define LS_NS_PER_SEC 1000000000ull

#define LS_NORETURN __attribute__((noreturn))
#define LS_PRINTF(f, a) __attribute__((format(printf, f, a)))

/* ---- Entry -------------------------------------------------------------- */

/* Defined by the guest. Returns the exit code. */
int ls_main(const struct ls_boot_info *boot);

/* The boot info the guest was started with (NULL before entry). */
const struct ls_boot_info *ls_boot_info(void);

/* The argument string (boot->args), never NULL. */
const char *ls_args(void);

/* ---- Hypercalls ----------------------------------------------------------
 *
 * The doorbell: ONE 8-byte store of the descriptor's address. The asm has a
 * "memory" clobber so that every store to the descriptor (and to buffers it
 * names) happens before it and every read of the results happens after it.
 */
#ifndef LS_HOST_TEST
static inline void ls_doorbell(ls_u64 descriptor_address) {
  __asm__ volatile("movq %0, (%1)"
                   :
                   : "r"(descriptor_address), "r"((ls_u64)LS_DOORBELL_GPA)
                   : "memory");
}
#else
/* Hosted unit tests replace the VMM with this function. */
void ls_host_doorbell(ls_u64 descriptor_address);
static inline void ls_doorbell(ls_u64 descriptor_address) { ls_host_doorbell(descriptor_address); }
#endif

/* Performs the call described by `c` (op and arg set by the caller).
 * Returns c->result; outputs are in c->out. */
static inline ls_i32 ls_hypercall(struct ls_call *c) {
  ls_doorbell((ls_u64)(unsigned long)c);
  return ((volatile struct ls_call *)c)->result;
}

/* A call with up to four arguments and no outputs of interest. */
ls_i32 ls_call4(ls_u32 op, ls_u64 a0, ls_u64 a1, ls_u64 a2, ls_u64 a3);

ls_i32 ls_nop(void);
/* Raw console write: len must be <= LS_CONSOLE_MAX (else LS_EINVAL). */
ls_i32 ls_console_write(const void *buf, size_t len);
/* Writes a whole string in LS_CONSOLE_MAX chunks. */
ls_i32 ls_puts(const char *s);
/* Flushes the tx ring (if net is attached) and exits. */
LS_NORETURN void ls_exit(int code);
/* Stops the VM with an error message. */
LS_NORETURN void ls_abort(const char *msg);
/* Formats a message and aborts. */
LS_NORETURN void ls_abortf(const char *fmt, ...) LS_PRINTF(1, 2);

/* Monotonic and wall-clock ns (either pointer may be NULL). */
ls_i32 ls_clock(ls_u64 *mono_ns, ls_u64 *wall_ns);
/* Monotonic ns; aborts if the clock call fails. */
ls_u64 ls_monotonic_ns(void);
/* Wall-clock ns since the Unix epoch; aborts if the clock call fails. */
ls_u64 ls_wall_ns(void);

/* Fills buf with random bytes (any length; LS_ENTROPY_MAX per call). */
ls_i32 ls_entropy(void *buf, size_t len);
/* A random 64-bit number; aborts if the entropy call fails. */
ls_u64 ls_random_u64(void);

/* Blocks until input arrives or `deadline` (monotonic ns; LS_WAIT_POLL or
 * LS_WAIT_FOREVER) passes. Returns the LS_READY_* mask (>= 0) or a negative
 * LS_E* code; *now_ns (may be NULL) receives the time of return. The VMM
 * also drains the tx ring and delivers rx messages during this exit. */
ls_i64 ls_wait(ls_u64 deadline, ls_u64 *now_ns);
/* Sleeps until the monotonic clock reaches now + ns (input may wake it
 * early; it waits again). Returns 0 or a negative code. */
ls_i32 ls_sleep_ns(ls_u64 ns);

/* Block device. Offsets and lengths are multiples of LS_SECTOR_SIZE; the
 * wrappers split transfers larger than LS_BLOCK_MAX_IO. */
ls_i32 ls_block_read(ls_u64 offset, void *buf, size_t len);
ls_i32 ls_block_write(ls_u64 offset, const void *buf, size_t len);
ls_i32 ls_block_flush(void);
/* Bytes on the disk (0 when there is none), from the boot info. */
ls_u64 ls_disk_size(void);

/* ---- Heap ----------------------------------------------------------------
 *
 * A boundary-tag allocator with segregated free lists and immediate
 * coalescing over [heap_start, heap_end). Pointers are 16-byte aligned.
 * Out of memory returns NULL. free(NULL) is a no-op; freeing a pointer that
 * is not a live allocation aborts the guest.
 */
struct ls_heap_stats {
  size_t total;       /* bytes managed (heap_end - heap_start, less overhead) */
  size_t in_use;      /* bytes in allocated chunks (including headers) */
  size_t free;        /* bytes in free chunks plus the untouched top */
  size_t allocations; /* live allocations */
};

/* Called by the SDK entry; exposed for tests. Returns 0 or LS_EINVAL. */
int ls_heap_init(void *start, void *end);
void *ls_malloc(size_t n);
void ls_free(void *p);
void *ls_calloc(size_t count, size_t size);
void *ls_realloc(void *p, size_t n);
/* `align` is a power of two; the result can be passed to ls_free. */
void *ls_memalign(size_t align, size_t n);
/* Bytes usable at p (>= the size requested). */
size_t ls_malloc_usable_size(const void *p);
void ls_heap_stats(struct ls_heap_stats *out);
/* Walks the heap checking every boundary tag and free list; returns 0 or
 * LS_ECORRUPT. O(heap); for tests and debugging. */
int ls_heap_check(void);

/* ---- Strings and memory ---------------------------------------------------
 *
 * The standard names, so that compiler-generated calls (struct copies,
 * zeroing) resolve here. Hosted unit tests rename them (see below).
 */
#ifdef LS_HOST_TEST
#define memcpy lsh_memcpy
#define memmove lsh_memmove
#define memset lsh_memset
#define memcmp lsh_memcmp
#define memchr lsh_memchr
#define strlen lsh_strlen
#define strnlen lsh_strnlen
#define strcmp lsh_strcmp
#define strncmp lsh_strncmp
#define strcasecmp lsh_strcasecmp
#define strncasecmp lsh_strncasecmp
#define strchr lsh_strchr
#define strrchr lsh_strrchr
#define strstr lsh_strstr
#endif

void *memcpy(void *dst, const void *src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);
void *memchr(const void *s, int c, size_t n);
size_t strlen(const char *s);
size_t strnlen(const char *s, size_t max);
int strcmp(const char *a, const char *b);
int strncmp(const char *a, const char *b, size_t n);
int strcasecmp(const char *a, const char *b);
int strncasecmp(const char *a, const char *b, size_t n);
char *strchr(const char *s, int c);
char *strrchr(const char *s, int c);
char *strstr(const char *haystack, const char *needle);
/* Copies at most size-1 bytes and NUL-terminates (if size > 0); returns
 * strlen(src). */
size_t ls_strlcpy(char *dst, const char *src, size_t size);
/* Finds `needle` (n bytes) in `hay` (m bytes); NULL if absent. */
void *ls_memmem(const void *hay, size_t m, const void *needle, size_t n);

static inline int ls_isdigit(int c) { return c >= '0' && c <= '9'; }
static inline int ls_isspace(int c) { return c == ' ' || (c >= '\t' && c <= '\r'); }
static inline int ls_isalpha(int c) { return (c | 32) >= 'a' && (c | 32) <= 'z'; }
static inline int ls_isxdigit(int c) { return ls_isdigit(c) || ((c | 32) >= 'a' && (c | 32) <= 'f'); }
static inline int ls_tolower(int c) { return (c >= 'A' && c <= 'Z') ? c + 32 : c; }
static inline int ls_toupper(int c) { return (c >= 'a' && c <= 'z') ? c - 32 : c; }

/* Number conversion. The parsers take exactly `len` bytes: an optional sign
 * (only '-' / '+' for signed, '+' for unsigned), then one or more decimal
 * digits and nothing else. They return 0, or LS_EINVAL on a syntax error or
 * overflow (leaving *out untouched). */
int ls_parse_i64(const char *s, size_t len, ls_i64 *out);
int ls_parse_u64(const char *s, size_t len, ls_u64 *out);
/* Hexadecimal digits only (no "0x"); 1..16 of them. */
int ls_parse_hex_u64(const char *s, size_t len, ls_u64 *out);
/* Decimal text, NUL-terminated; `buf` needs LS_FMT_INT_MAX bytes. Returns
 * the number of characters (excluding the NUL). */
#define LS_FMT_INT_MAX 24
size_t ls_format_u64(char *buf, ls_u64 v);
size_t ls_format_i64(char *buf, ls_i64 v);

/* ---- Formatted output ------------------------------------------------------
 *
 * Conversions: %d %i %u %x %X %o %c %s %p %%; flags '-', '0', '+', ' ';
 * width and precision (numbers or '*'); length modifiers hh h l ll z t j.
 * %.*s prints at most that many bytes. Unknown conversions are copied.
 * The snprintf pair returns the length the full output would have had and
 * NUL-terminates when size > 0. ls_printf writes one console record per
 * call (split only if longer than its 2 KiB buffer).
 */
int ls_vsnprintf(char *buf, size_t size, const char *fmt, va_list ap);
int ls_snprintf(char *buf, size_t size, const char *fmt, ...) LS_PRINTF(3, 4);
int ls_vprintf(const char *fmt, va_list ap);
int ls_printf(const char *fmt, ...) LS_PRINTF(1, 2);

/* The engine under both: calls `sink(ctx, bytes, n)` for each piece. */
typedef void (*ls_format_sink)(void *ctx, const char *bytes, size_t n);
int ls_vformat(ls_format_sink sink, void *ctx, const char *fmt, va_list ap);

/* ---- Net -------------------------------------------------------------------
 *
 * One rx ring (VMM -> guest: OPEN, DATA, CLOSED) and one tx ring (guest ->
 * VMM: DATA, CLOSE), allocated from the heap and attached with
 * LS_OP_NET_ATTACH. The VMM delivers rx messages during LS_OP_WAIT exits and
 * drains all of tx on every NET_FLUSH and WAIT exit.
 *
 * Receiving: ls_net_next() returns the oldest rx message without copying;
 * ev->data points into the ring and stays valid until the message is
 * consumed, which happens at the next ls_net_next() or ls_net_consume()
 * call (calls that exit to the VMM in between, such as ls_net_send, are
 * fine: the VMM never overwrites unconsumed bytes).
 *
 * Sending: ls_net_send() appends DATA messages (splitting large payloads),
 * flushing the ring with LS_OP_NET_FLUSH when it is full. Nothing reaches
 * the client before the next exit that drains tx (a WAIT, a NET_FLUSH, or
 * a send that found the ring full).
 */
struct ls_net_event {
  ls_u32 conn;       /* connection id */
  ls_u16 type;       /* LS_MSG_OPEN, LS_MSG_DATA or LS_MSG_CLOSED */
  ls_u32 length;     /* payload bytes */
  const ls_u8 *data; /* payload (OPEN: "ip:port", not NUL-terminated) */
};

/* Capacities are powers of two in [LS_RING_MIN, LS_RING_MAX]. Returns 0,
 * LS_EINVAL, LS_ENOMEM, LS_ESTATE (already attached) or the VMM's result. */
ls_i32 ls_net_init(ls_u64 rx_capacity, ls_u64 tx_capacity);
/* Whether ls_net_init succeeded. */
int ls_net_attached(void);
/* 1 and *ev filled when a message is available, 0 when rx is empty,
 * LS_ECORRUPT (negative) when the ring is malformed, LS_ESTATE if not
 * attached. Consumes the previously returned message first. */
int ls_net_next(struct ls_net_event *ev);
/* Consumes the message last returned by ls_net_next (idempotent). */
void ls_net_consume(void);
/* Whether rx holds unconsumed messages (beyond the one being looked at). */
int ls_net_pending(void);
/* Queues `len` bytes to `conn`. Returns 0 or a negative code (after which
 * a prefix of the bytes may have been queued). */
ls_i32 ls_net_send(ls_u32 conn, const void *data, size_t len);
/* Queues a CLOSE for `conn` (after everything queued before it). */
ls_i32 ls_net_close(ls_u32 conn);
/* LS_OP_NET_FLUSH: hands the whole tx ring to the VMM now. */
ls_i32 ls_net_flush(void);
/* Bytes currently queued in tx (not yet drained by the VMM). */
ls_u64 ls_net_tx_queued(void);

/* Event loop. A guest fills the handlers it needs (NULL = ignore) and calls
 * ls_net_poll in a loop; everything else is the SDK's job. */
struct ls_net_handlers {
  void (*on_open)(void *ctx, ls_u32 conn, const char *peer, ls_u32 peer_len);
  void (*on_data)(void *ctx, ls_u32 conn, const ls_u8 *data, ls_u32 len);
  void (*on_closed)(void *ctx, ls_u32 conn);
  void *ctx;
};
/* Dispatches every message already in rx. Returns the number dispatched or
 * a negative code (a corrupt ring). */
int ls_net_dispatch(const struct ls_net_handlers *h);
/* One turn of the loop: waits (LS_OP_WAIT, which also sends everything
 * queued) until input or `deadline` — without blocking if rx still holds
 * messages — then dispatches everything received. Returns the ready mask or
 * a negative code. *now_ns (may be NULL) is the time the wait returned. */
ls_i64 ls_net_poll(const struct ls_net_handlers *h, ls_u64 deadline, ls_u64 *now_ns);

#ifdef __cplusplus
}
#endif

#endif /* LOCKSTEP_H */
