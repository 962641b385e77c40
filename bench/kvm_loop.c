/*
 * kvm_loop.c — the floor for Lockstep's hypercall round trip: the smallest
 * guest and VMM that do what `bench.elf nop N` does, in plain C on /dev/kvm
 * (no Lockstep code).
 *
 * The guest runs in ring 3, long mode, identity-mapped with 2 MiB pages,
 * with the same CR0/CR4/EFER and user segments as Lockstep's BootLayout.
 * Its code is:
 *
 *     loop: mov [rax], rcx    ; rax = 0xE0000000 (doorbell, no memory slot)
 *           dec rdx           ; rcx = descriptor {op = LS_OP_NOP}
 *           jnz loop
 *           mov [rax], rsi    ; rsi = descriptor {op = LS_OP_EXIT}
 *           jmp .
 *
 * The VMM loop does KVM_RUN, checks KVM_EXIT_MMIO and the doorbell address,
 * reads the descriptor's op from guest memory and writes its result (the
 * minimum real work a hypercall does).
 *
 * Usage: kvm_loop [N]   (default 200000)
 * Prints: C_LOOP calls=N ns_per_call=X total_ns=T
 * Optional knobs, to measure what extra work on the exit path costs (both
 * off by default; the result line then names them):
 *   KVM_LOOP_SYNC_REGS=1  ask KVM to copy the GPRs into kvm_run at every exit
 *                         (as primary-vmm does);
 *   KVM_LOOP_TOUCH=K      read one cache line in each of K distinct 4 KiB
 *                         pages of a host buffer at every exit (a stand-in
 *                         for a bigger VMM working set).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define MEM_SIZE (4ull << 20)   /* two 2 MiB pages */
#define PML4 0x1000ull
#define PDPT 0x2000ull
#define PD_LOW 0x3000ull        /* 0-1 GiB */
#define PD_DOORBELL 0x4000ull   /* 3-4 GiB */
#define GDT 0x5000ull
#define TSS 0x5100ull
#define DESC_NOP 0x6000ull
#define DESC_EXIT 0x6040ull
#define CODE 0x100000ull
#define STACK_TOP MEM_SIZE
#define DOORBELL 0xE0000000ull

#define OP_NOP 0u
#define OP_EXIT 2u

static void die(const char *what) {
  fprintf(stderr, "kvm_loop: %s: %s\n", what, strerror(errno));
  exit(1);
}

static void put64(uint8_t *mem, uint64_t gpa, uint64_t value) { memcpy(mem + gpa, &value, 8); }

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int main(int argc, char **argv) {
  uint64_t n = 200000;
  if (argc > 2 || (argc == 2 && (n = strtoull(argv[1], NULL, 10)) == 0)) {
    fprintf(stderr, "usage: kvm_loop [N >= 1]\n");
    return 2;
  }
  const char *sync = getenv("KVM_LOOP_SYNC_REGS");
  int sync_regs = sync && *sync && strcmp(sync, "0") != 0;
  const char *touch_env = getenv("KVM_LOOP_TOUCH");
  unsigned long touch = touch_env ? strtoul(touch_env, NULL, 10) : 0;
  if (touch > 4096) touch = 4096;
  volatile uint8_t *touch_area = NULL;
  if (touch) {
    touch_area = mmap(NULL, touch * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (touch_area == MAP_FAILED) die("mmap touch area");
  }

  int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (kvm < 0) die("open /dev/kvm");
  if (ioctl(kvm, KVM_GET_API_VERSION, 0) != KVM_API_VERSION) die("KVM API version");
  int vm = ioctl(kvm, KVM_CREATE_VM, 0);
  if (vm < 0) die("KVM_CREATE_VM");

  uint8_t *mem = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_POPULATE, -1, 0);
  if (mem == MAP_FAILED) die("mmap guest memory");
  struct kvm_userspace_memory_region region = {
      .slot = 0, .guest_phys_addr = 0, .memory_size = MEM_SIZE, .userspace_addr = (uint64_t)(uintptr_t)mem};
  if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region) < 0) die("KVM_SET_USER_MEMORY_REGION");

  /* Page tables: P|RW|US = 7, PS = 0x80. RAM and the doorbell in 2 MiB pages. */
  put64(mem, PML4, PDPT | 7);
  put64(mem, PDPT + 0 * 8, PD_LOW | 7);
  put64(mem, PDPT + 3 * 8, PD_DOORBELL | 7);
  for (uint64_t a = 0; a < MEM_SIZE; a += 2ull << 20) put64(mem, PD_LOW + (a >> 21) * 8, a | 0x87);
  put64(mem, PD_DOORBELL + ((DOORBELL >> 21) & 511) * 8, (DOORBELL & ~((2ull << 20) - 1)) | 0x87);

  /* GDT: null, kernel code, kernel data, user code (0x1B), user data (0x23), TSS. */
  put64(mem, GDT + 0x00, 0);
  put64(mem, GDT + 0x08, 0x00209A0000000000ull);
  put64(mem, GDT + 0x10, 0x0000920000000000ull);
  put64(mem, GDT + 0x18, 0x0020FA0000000000ull);
  put64(mem, GDT + 0x20, 0x0000F20000000000ull);
  put64(mem, GDT + 0x28, 0x67ull | ((TSS & 0xFFFFFF) << 16) | (0x89ull << 40) | (((TSS >> 24) & 0xFF) << 56));
  put64(mem, GDT + 0x30, TSS >> 32);
  put64(mem, TSS + 4, STACK_TOP);  /* RSP0 (unused: nothing traps to ring 0) */
  uint16_t iomap = 0x68;
  memcpy(mem + TSS + 102, &iomap, 2);

  /* Descriptors: 64 bytes each, op at offset 0, result at offset 4. */
  uint32_t op = OP_NOP;
  memcpy(mem + DESC_NOP, &op, 4);
  op = OP_EXIT;
  memcpy(mem + DESC_EXIT, &op, 4);

  static const uint8_t code[] = {
      0x48, 0x89, 0x08, /* loop: mov [rax], rcx */
      0x48, 0xFF, 0xCA, /* dec rdx */
      0x75, 0xF8,       /* jnz loop */
      0x48, 0x89, 0x30, /* mov [rax], rsi */
      0xEB, 0xFE,       /* jmp . */
  };
  memcpy(mem + CODE, code, sizeof code);

  int vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
  if (vcpu < 0) die("KVM_CREATE_VCPU");
  int map_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
  if (map_size < (int)sizeof(struct kvm_run)) die("KVM_GET_VCPU_MMAP_SIZE");
  struct kvm_run *run = mmap(NULL, (size_t)map_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
  if (run == MAP_FAILED) die("mmap kvm_run");

  struct kvm_sregs sregs;
  if (ioctl(vcpu, KVM_GET_SREGS, &sregs) < 0) die("KVM_GET_SREGS");
  struct kvm_segment cs = {.base = 0, .limit = 0xFFFFFFFF, .selector = 0x1B, .type = 11, .present = 1,
                           .dpl = 3, .db = 0, .s = 1, .l = 1, .g = 1};
  struct kvm_segment ds = {.base = 0, .limit = 0xFFFFFFFF, .selector = 0x23, .type = 3, .present = 1,
                           .dpl = 3, .db = 1, .s = 1, .l = 0, .g = 1};
  sregs.cs = cs;
  sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss = ds;
  sregs.tr = (struct kvm_segment){.base = TSS, .limit = 0x67, .selector = 0x28, .type = 11, .present = 1};
  sregs.ldt = (struct kvm_segment){.type = 2, .unusable = 1};
  sregs.gdt.base = GDT;
  sregs.gdt.limit = 0x37;
  sregs.idt.base = 0;
  sregs.idt.limit = 0;  /* no IDT: a fault is a triple fault (KVM_EXIT_SHUTDOWN) */
  sregs.cr0 = 0x80050033;
  sregs.cr3 = PML4;
  sregs.cr4 = 0x624;  /* PAE | TSD | OSFXSR | OSXMMEXCPT */
  sregs.efer = 0x500; /* LME | LMA */
  if (ioctl(vcpu, KVM_SET_SREGS, &sregs) < 0) die("KVM_SET_SREGS");

  struct kvm_regs regs = {0};
  regs.rip = CODE;
  regs.rsp = STACK_TOP;
  regs.rflags = 0x2;
  regs.rax = DOORBELL;
  regs.rcx = DESC_NOP;
  regs.rdx = n;
  regs.rsi = DESC_EXIT;
  if (ioctl(vcpu, KVM_SET_REGS, &regs) < 0) die("KVM_SET_REGS");
  if (sync_regs) run->kvm_valid_regs = KVM_SYNC_X86_REGS;

  uint64_t calls = 0;
  uint64_t t0 = now_ns();
  for (;;) {
    if (ioctl(vcpu, KVM_RUN, 0) < 0) {
      if (errno == EINTR) continue;
      die("KVM_RUN");
    }
    if (run->exit_reason != KVM_EXIT_MMIO || !run->mmio.is_write || run->mmio.phys_addr != DOORBELL ||
        run->mmio.len != 8) {
      fprintf(stderr, "kvm_loop: unexpected exit %u (mmio addr 0x%llx len %u) after %llu calls\n",
              run->exit_reason, (unsigned long long)run->mmio.phys_addr, run->mmio.len,
              (unsigned long long)calls);
      return 1;
    }
    uint64_t desc;
    memcpy(&desc, run->mmio.data, 8);
    if (desc > MEM_SIZE - 64 || desc % 8) {
      fprintf(stderr, "kvm_loop: bad descriptor 0x%llx\n", (unsigned long long)desc);
      return 1;
    }
    uint32_t call_op;
    memcpy(&call_op, mem + desc, 4);
    if (call_op == OP_EXIT) break;
    if (call_op != OP_NOP) {
      fprintf(stderr, "kvm_loop: unexpected op %u\n", call_op);
      return 1;
    }
    int32_t result = 0;
    memcpy(mem + desc + 4, &result, 4);
    for (unsigned long page = 0; page < touch; page++) (void)touch_area[page * 4096 + (calls & 63) * 64];
    calls++;
  }
  uint64_t total = now_ns() - t0;
  if (calls != n) {
    fprintf(stderr, "kvm_loop: %llu calls, expected %llu\n", (unsigned long long)calls, (unsigned long long)n);
    return 1;
  }
  printf("C_LOOP calls=%llu ns_per_call=%llu total_ns=%llu", (unsigned long long)calls,
         (unsigned long long)(total / calls), (unsigned long long)total);
  if (sync_regs) printf(" sync_regs=1");
  if (touch) printf(" touch_pages=%lu", touch);
  printf("\n");
  return 0;
}
