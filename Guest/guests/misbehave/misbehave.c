/*
 * misbehave — does one forbidden thing, chosen by the argument string, so
 * that tests can check the VMM contains it (the guest may only fail
 * itself). It prints "MISBEHAVE <mode>" first. If the VMM lets it carry on
 * (for example by returning an error from a call), it prints
 * "MISBEHAVE <mode> survived result=<r>" and exits with code 3.
 *
 * Unknown or missing mode: usage on the console, exit code 2.
 */
#include "lockstep.h"

static const struct ls_boot_info *boot;

static void survived(const char *mode, ls_i64 result) {
  ls_printf("MISBEHAVE %s survived result=%lld\n", mode, result);
  ls_exit(3);
}

static void wild_descriptor(void) { ls_doorbell(0x7fff00000000ull); }

static ls_i64 wild_buffer(void) {
  return ls_call4(LS_OP_CONSOLE_WRITE, boot->memory_size + 4096, 16, 0, 0);
}

static ls_i64 huge_length(void) {
  return ls_call4(LS_OP_CONSOLE_WRITE, boot->memory_size - 16, LS_CONSOLE_MAX - 1, 0, 0);
}

/* Attaches a ring pair built by hand, then claims tx holds four times its
 * capacity and asks the VMM to drain it. */
static ls_i64 bad_ring_direct(void) {
  const ls_u64 cap = LS_RING_MIN;
  struct ls_ring *rx = ls_memalign(4096, sizeof(struct ls_ring) + cap);
  struct ls_ring *tx = ls_memalign(4096, sizeof(struct ls_ring) + cap);
  if (!rx || !tx) ls_abort("misbehave: out of memory");
  memset(rx, 0, sizeof *rx);
  memset(tx, 0, sizeof *tx);
  ls_i32 r = ls_call4(LS_OP_NET_ATTACH, (ls_u64)(unsigned long)rx, cap, (ls_u64)(unsigned long)tx, cap);
  if (r != LS_OK) {
    ls_printf("MISBEHAVE bad-ring net attach failed result=%d\n", r);
    ls_exit(4);
  }
  *(volatile ls_u64 *)&tx->head = tx->tail + cap * 4;
  return ls_call4(LS_OP_NET_FLUSH, 0, 0, 0, 0);
}

static ls_i64 bad_ring_attach(void) {
  const ls_u64 cap = LS_RING_MIN;
  struct ls_ring *tx = ls_memalign(4096, sizeof(struct ls_ring) + cap);
  if (!tx) ls_abort("misbehave: out of memory");
  memset(tx, 0, sizeof *tx);
  return ls_call4(LS_OP_NET_ATTACH, boot->memory_size + 4096, cap, (ls_u64)(unsigned long)tx, cap);
}

static void null_deref(void) {
  /* Through asm, so the compiler cannot treat the store as undefined. */
  __asm__ volatile("movq %0, (%1)" : : "r"(1ull), "r"(0ull) : "memory");
}

static void privileged(void) {
  __asm__ volatile("cli" ::: "memory");
  /* Not reached on a correct VMM; try the other one too. */
  __asm__ volatile("movq %0, %%cr3" : : "r"(0x1000ull) : "memory");
}

static void undefined_instruction(void) { __asm__ volatile("ud2" ::: "memory"); }

static ls_i64 divide_zero(void) {
  volatile ls_u64 a = 1, b = 0;
  ls_u64 q = a / b;
  return (ls_i64)q;
}

/* Unbounded recursion, each frame 1 MiB and written only at its top (the
 * return address and saved registers). The compiler can prove neither that
 * it is endless (the limit comes from boot info) nor turn it into a loop
 * (the frame is used after the call).
 *
 * There is no guard page below the stack, so the overflow first runs
 * through the heap. RAM ends on a 2 MiB boundary and a frame is a little
 * over 1 MiB, so the frame tops sit just below 1 MiB multiples (drifting
 * down a few dozen bytes per frame, under 100 KiB for 3 GiB of RAM): the
 * frame whose top is just below 2 MiB pushes its callee's return address
 * below 1 MiB, into supervisor-only memory, and faults there without ever
 * having written into the image (which would make the failure depend on
 * which code got overwritten). */
#define FRAME (1ul << 20)
static ls_u64 __attribute__((noinline)) recurse(ls_u64 depth, ls_u64 limit) {
  char frame[FRAME];
  __asm__ volatile("" : : "r"(frame) : "memory"); /* the frame exists; nothing written */
  if (depth == limit) return depth;
  return recurse(depth + 1, limit) + (ls_u64)(unsigned long)frame;
}

static void fault_doorbell(void) {
  __asm__ volatile("movq %0, (%1)" : : "r"(0x1234ull), "r"((ls_u64)LS_FAULT_DOORBELL_GPA) : "memory");
}

static const char *const modes[] = {
    "wild-descriptor", "wild-buffer", "huge-length", "bad-ring", "bad-ring-attach", "null-deref",
    "privileged",      "ud2",         "divide-zero", "abort",    "stack-overflow",  "fault-doorbell",
    "exit-7",
};

static int usage(const char *args) {
  char list[512];
  size_t n = 0;
  for (size_t i = 0; i < sizeof modes / sizeof modes[0] && n < sizeof list; i++)
    n += (size_t)ls_snprintf(list + n, sizeof list - n, " %s", modes[i]);
  ls_printf("MISBEHAVE usage: exactly one of%s (got \"%s\")\n", list, args);
  return 2;
}

int ls_main(const struct ls_boot_info *b) {
  boot = b;
  /* Exactly one word, surrounding spaces tolerated. */
  const char *a = b->args;
  while (ls_isspace(*a)) a++;
  size_t n = 0;
  while (a[n] && !ls_isspace(a[n])) n++;
  for (const char *rest = a + n; *rest; rest++)
    if (!ls_isspace(*rest)) return usage(b->args);
  char mode[32];
  if (n == 0 || n >= sizeof mode) return usage(b->args);
  memcpy(mode, a, n);
  mode[n] = '\0';

  int known = 0;
  for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) known |= strcmp(mode, modes[i]) == 0;
  if (!known) return usage(b->args);
  ls_printf("MISBEHAVE %s\n", mode);

  ls_i64 r = 0;
  if (!strcmp(mode, "wild-descriptor")) wild_descriptor();
  else if (!strcmp(mode, "wild-buffer")) r = wild_buffer();
  else if (!strcmp(mode, "huge-length")) r = huge_length();
  else if (!strcmp(mode, "bad-ring")) r = bad_ring_direct();
  else if (!strcmp(mode, "bad-ring-attach")) r = bad_ring_attach();
  else if (!strcmp(mode, "null-deref")) null_deref();
  else if (!strcmp(mode, "privileged")) privileged();
  else if (!strcmp(mode, "ud2")) undefined_instruction();
  else if (!strcmp(mode, "divide-zero")) r = divide_zero();
  else if (!strcmp(mode, "abort")) ls_abort("misbehave: deliberate abort");
  else if (!strcmp(mode, "stack-overflow")) r = (ls_i64)recurse(0, boot->memory_size);
  else if (!strcmp(mode, "fault-doorbell")) fault_doorbell();
  else if (!strcmp(mode, "exit-7")) ls_exit(7);
  survived(mode, r);
  return 3;
}
