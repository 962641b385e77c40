// CLockstepKVM — the C that Swift cannot import: KVM's ioctl request
// numbers (function-like macros), the variadic ioctl(2), and the guest ABI
// header. Every name carries the `lskvm_` prefix.
#ifndef CLOCKSTEP_KVM_H
#define CLOCKSTEP_KVM_H

#include <linux/kvm.h>
#include <stdint.h>

// The guest ABI is one header shared with the guest SDK.
#include "../../../Guest/include/lockstep_abi.h"

extern const unsigned long lskvm_GET_API_VERSION;
extern const unsigned long lskvm_CREATE_VM;
extern const unsigned long lskvm_CHECK_EXTENSION;
extern const unsigned long lskvm_GET_VCPU_MMAP_SIZE;
extern const unsigned long lskvm_GET_SUPPORTED_CPUID;
extern const unsigned long lskvm_SET_USER_MEMORY_REGION;
extern const unsigned long lskvm_CREATE_VCPU;
extern const unsigned long lskvm_RUN;
extern const unsigned long lskvm_GET_REGS;
extern const unsigned long lskvm_SET_REGS;
extern const unsigned long lskvm_GET_SREGS;
extern const unsigned long lskvm_SET_SREGS;
extern const unsigned long lskvm_SET_CPUID2;
extern const unsigned long lskvm_GET_DIRTY_LOG;
extern const unsigned long lskvm_ENABLE_CAP;
extern const unsigned long lskvm_GET_FPU;
extern const unsigned long lskvm_SET_FPU;

extern const uint32_t lskvm_CAP_SYNC_REGS;
extern const uint32_t lskvm_CAP_USER_MEMORY;
extern const uint32_t lskvm_CAP_IMMEDIATE_EXIT;
extern const uint32_t lskvm_CAP_EXT_CPUID;

extern const uint64_t lskvm_SYNC_X86_REGS;
extern const uint64_t lskvm_SYNC_X86_SREGS;
extern const uint32_t lskvm_MEM_LOG_DIRTY_PAGES;

/// ioctl(2) with a pointer argument; returns -1 and sets errno on failure.
int lskvm_ioctl_ptr(int fd, unsigned long request, void *argument);
/// ioctl(2) with an integer argument.
int lskvm_ioctl_int(int fd, unsigned long request, unsigned long argument);

/// A kvm_cpuid2 with room for `count` entries, zeroed; free with free(3).
struct kvm_cpuid2 *lskvm_cpuid2_alloc(uint32_t count);
/// The entries of a kvm_cpuid2 (a flexible array member).
struct kvm_cpuid_entry2 *lskvm_cpuid2_entries(struct kvm_cpuid2 *cpuid);

// kvm_run accessors: static inline, so the exit path makes no calls.
#include <string.h>

/// The general-purpose registers KVM copies into kvm_run on every exit
/// when KVM_SYNC_X86_REGS is requested (no KVM_GET_REGS ioctl needed).
static inline struct kvm_regs *lskvm_run_sync_regs(struct kvm_run *run) { return &run->s.regs.regs; }
/// Selects which register sets KVM syncs into kvm_run on the next exit.
static inline void lskvm_run_request_sync(struct kvm_run *run, uint64_t valid) { run->kvm_valid_regs = valid; }
/// kvm_run.exit_reason.
static inline uint32_t lskvm_run_exit_reason(const struct kvm_run *run) { return run->exit_reason; }
/// The MMIO exit details of kvm_run.
static inline uint64_t lskvm_run_mmio_address(const struct kvm_run *run) { return run->mmio.phys_addr; }
static inline uint32_t lskvm_run_mmio_length(const struct kvm_run *run) { return run->mmio.len; }
static inline int lskvm_run_mmio_is_write(const struct kvm_run *run) { return run->mmio.is_write; }
static inline uint64_t lskvm_run_mmio_data64(const struct kvm_run *run) {
  uint64_t value;
  memcpy(&value, run->mmio.data, sizeof value);
  return value;
}
/// The internal-error sub-code of KVM_EXIT_INTERNAL_ERROR.
static inline uint32_t lskvm_run_internal_suberror(const struct kvm_run *run) { return run->internal.suberror; }
/// The hardware reason of KVM_EXIT_FAIL_ENTRY.
static inline uint64_t lskvm_run_fail_entry_reason(const struct kvm_run *run) {
  return run->fail_entry.hardware_entry_failure_reason;
}
/// Sets kvm_run.immediate_exit.
static inline void lskvm_run_set_immediate_exit(struct kvm_run *run, uint8_t value) { run->immediate_exit = value; }

/// Makes SIGUSR1 interrupt KVM_RUN (EINTR) without killing the process:
/// installs a no-op handler without SA_RESTART. Idempotent.
void lskvm_install_kick_handler(void);
/// The signal used to kick a vCPU thread out of KVM_RUN.
extern const int lskvm_KICK_SIGNAL;

#endif
