#include "CLockstepKVM.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

const unsigned long lskvm_GET_API_VERSION = KVM_GET_API_VERSION;
const unsigned long lskvm_CREATE_VM = KVM_CREATE_VM;
const unsigned long lskvm_CHECK_EXTENSION = KVM_CHECK_EXTENSION;
const unsigned long lskvm_GET_VCPU_MMAP_SIZE = KVM_GET_VCPU_MMAP_SIZE;
const unsigned long lskvm_GET_SUPPORTED_CPUID = KVM_GET_SUPPORTED_CPUID;
const unsigned long lskvm_SET_USER_MEMORY_REGION = KVM_SET_USER_MEMORY_REGION;
const unsigned long lskvm_CREATE_VCPU = KVM_CREATE_VCPU;
const unsigned long lskvm_RUN = KVM_RUN;
const unsigned long lskvm_GET_REGS = KVM_GET_REGS;
const unsigned long lskvm_SET_REGS = KVM_SET_REGS;
const unsigned long lskvm_GET_SREGS = KVM_GET_SREGS;
const unsigned long lskvm_SET_SREGS = KVM_SET_SREGS;
const unsigned long lskvm_SET_CPUID2 = KVM_SET_CPUID2;
const unsigned long lskvm_GET_DIRTY_LOG = KVM_GET_DIRTY_LOG;
const unsigned long lskvm_ENABLE_CAP = KVM_ENABLE_CAP;
const unsigned long lskvm_GET_FPU = KVM_GET_FPU;
const unsigned long lskvm_SET_FPU = KVM_SET_FPU;

const uint32_t lskvm_CAP_SYNC_REGS = KVM_CAP_SYNC_REGS;
const uint32_t lskvm_CAP_USER_MEMORY = KVM_CAP_USER_MEMORY;
const uint32_t lskvm_CAP_IMMEDIATE_EXIT = KVM_CAP_IMMEDIATE_EXIT;
const uint32_t lskvm_CAP_EXT_CPUID = KVM_CAP_EXT_CPUID;

const uint64_t lskvm_SYNC_X86_REGS = KVM_SYNC_X86_REGS;
const uint64_t lskvm_SYNC_X86_SREGS = KVM_SYNC_X86_SREGS;
const uint32_t lskvm_MEM_LOG_DIRTY_PAGES = KVM_MEM_LOG_DIRTY_PAGES;

const int lskvm_KICK_SIGNAL = SIGUSR1;

int lskvm_ioctl_ptr(int fd, unsigned long request, void *argument) {
  return ioctl(fd, request, argument);
}

int lskvm_ioctl_int(int fd, unsigned long request, unsigned long argument) {
  return ioctl(fd, request, argument);
}

struct kvm_cpuid2 *lskvm_cpuid2_alloc(uint32_t count) {
  size_t size = sizeof(struct kvm_cpuid2) + count * sizeof(struct kvm_cpuid_entry2);
  struct kvm_cpuid2 *cpuid = calloc(1, size);
  if (cpuid) cpuid->nent = count;
  return cpuid;
}

struct kvm_cpuid_entry2 *lskvm_cpuid2_entries(struct kvm_cpuid2 *cpuid) {
  return cpuid->entries;
}

static void lskvm_kick_handler(int signal) { (void)signal; }

void lskvm_install_kick_handler(void) {
  struct sigaction action;
  memset(&action, 0, sizeof action);
  action.sa_handler = lskvm_kick_handler;
  sigemptyset(&action.sa_mask);
  action.sa_flags = 0; /* no SA_RESTART: KVM_RUN returns EINTR */
  sigaction(SIGUSR1, &action, NULL);
}

