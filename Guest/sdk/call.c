/*
 * call.c — hypercall wrappers.
 *
 * Every wrapper builds its descriptor on the stack (8-byte aligned, inside
 * guest RAM) and rings the doorbell once per descriptor. Results are read
 * back through ls_hypercall(), after the doorbell store.
 */
#include "internal.h"

const struct ls_boot_info *ls__boot;
void (*ls__exit_hook)(void);

const struct ls_boot_info *ls_boot_info(void) { return ls__boot; }

const char *ls_args(void) { return ls__boot ? ls__boot->args : ""; }

ls_i32 ls_call4(ls_u32 op, ls_u64 a0, ls_u64 a1, ls_u64 a2, ls_u64 a3) {
  struct ls_call c = {.op = op, .arg = {a0, a1, a2, a3}};
  return ls_hypercall(&c);
}

static inline ls_u64 addr(const void *p) { return (ls_u64)(unsigned long)p; }

ls_i32 ls_nop(void) { return ls_call4(LS_OP_NOP, 0, 0, 0, 0); }

ls_i32 ls_console_write(const void *buf, size_t len) {
  return ls_call4(LS_OP_CONSOLE_WRITE, addr(buf), len, 0, 0);
}

ls_i32 ls_puts(const char *s) {
  size_t len = strlen(s);
  while (len > 0) {
    size_t n = len < LS_CONSOLE_MAX ? len : LS_CONSOLE_MAX;
    ls_i32 r = ls_console_write(s, n);
    if (r != LS_OK) return r;
    s += n;
    len -= n;
  }
  return LS_OK;
}

void ls_exit(int code) {
  void (*hook)(void) = ls__exit_hook;
  ls__exit_hook = 0;  /* never twice, even if the hook exits */
  if (hook) hook();
  ls_call4(LS_OP_EXIT, (ls_u64)(ls_i64)code, 0, 0, 0);
  /* The VMM does not resume an exited guest; if it ever did, fault. */
  for (;;) __builtin_trap();
}

void ls_abort(const char *msg) {
  size_t len = msg ? strnlen(msg, LS_CONSOLE_MAX) : 0;
  ls_call4(LS_OP_ABORT, addr(msg), len, 0, 0);
  for (;;) __builtin_trap();
}

void ls_abortf(const char *fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  ls_vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  ls_abort(buf);
}

ls_i32 ls_clock(ls_u64 *mono_ns, ls_u64 *wall_ns) {
  struct ls_call c = {.op = LS_OP_CLOCK};
  ls_i32 r = ls_hypercall(&c);
  if (r == LS_OK) {
    if (mono_ns) *mono_ns = c.out[0];
    if (wall_ns) *wall_ns = c.out[1];
  }
  return r;
}

ls_u64 ls_monotonic_ns(void) {
  ls_u64 mono;
  ls_i32 r = ls_clock(&mono, 0);
  if (r != LS_OK) ls_abortf("ls_monotonic_ns: clock failed (%d)", r);
  return mono;
}

ls_u64 ls_wall_ns(void) {
  ls_u64 wall;
  ls_i32 r = ls_clock(0, &wall);
  if (r != LS_OK) ls_abortf("ls_wall_ns: clock failed (%d)", r);
  return wall;
}

ls_i32 ls_entropy(void *buf, size_t len) {
  ls_u8 *p = buf;
  while (len > 0) {
    size_t n = len < LS_ENTROPY_MAX ? len : LS_ENTROPY_MAX;
    ls_i32 r = ls_call4(LS_OP_ENTROPY, addr(p), n, 0, 0);
    if (r != LS_OK) return r;
    p += n;
    len -= n;
  }
  return LS_OK;
}

ls_u64 ls_random_u64(void) {
  ls_u64 v;
  ls_i32 r = ls_entropy(&v, sizeof v);
  if (r != LS_OK) ls_abortf("ls_random_u64: entropy failed (%d)", r);
  return v;
}

ls_i64 ls_wait(ls_u64 deadline, ls_u64 *now_ns) {
  struct ls_call c = {.op = LS_OP_WAIT, .arg = {deadline}};
  ls_i32 r = ls_hypercall(&c);
  if (r != LS_OK) return r;
  if (now_ns) *now_ns = c.out[1];
  return (ls_i64)c.out[0];
}

ls_i32 ls_sleep_ns(ls_u64 ns) {
  ls_u64 now;
  ls_i32 r = ls_clock(&now, 0);
  if (r != LS_OK) return r;
  ls_u64 deadline = ns > LS_WAIT_FOREVER - now ? LS_WAIT_FOREVER : now + ns;
  while (now < deadline) {
    ls_i64 ready = ls_wait(deadline, &now);
    if (ready < 0) return (ls_i32)ready;
  }
  return LS_OK;
}

/* One block op per LS_BLOCK_MAX_IO chunk; stops at the first error. */
static ls_i32 block_io(ls_u32 op, ls_u64 offset, ls_u64 buf, size_t len) {
  if (len == 0) return ls_call4(op, offset, buf, 0, 0);
  while (len > 0) {
    size_t n = len < LS_BLOCK_MAX_IO ? len : LS_BLOCK_MAX_IO;
    ls_i32 r = ls_call4(op, offset, buf, n, 0);
    if (r != LS_OK) return r;
    offset += n;
    buf += n;
    len -= n;
  }
  return LS_OK;
}

ls_i32 ls_block_read(ls_u64 offset, void *buf, size_t len) {
  return block_io(LS_OP_BLOCK_READ, offset, addr(buf), len);
}

ls_i32 ls_block_write(ls_u64 offset, const void *buf, size_t len) {
  return block_io(LS_OP_BLOCK_WRITE, offset, addr(buf), len);
}

ls_i32 ls_block_flush(void) { return ls_call4(LS_OP_BLOCK_FLUSH, 0, 0, 0, 0); }

ls_u64 ls_disk_size(void) { return ls__boot ? ls__boot->disk_size : 0; }
