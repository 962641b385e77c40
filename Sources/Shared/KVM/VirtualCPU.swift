import CLockstepKVM

#if canImport(Glibc)
  import Glibc
#endif

/// One virtual CPU: its descriptor and the `kvm_run` area shared with KVM.
///
/// Not thread-safe: the thread that calls ``run()`` owns it. Other threads
/// stop it through a ``VirtualCPUKicker``.
public final class VirtualCPU {
  let descriptor: FileDescriptorOwner
  let shared: UnsafeMutablePointer<kvm_run>
  let mapSize: Int
  /// Kept alive for as long as the vCPU exists.
  let vm: VirtualMachine

  init(descriptor: consuming FileDescriptorOwner, mapSize: Int, vm: VirtualMachine) throws(SystemError) {
    let fd = descriptor.rawValue
    guard let area = mmap(nil, mapSize, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), area != MAP_FAILED
    else {
      throw SystemError("mmap(vcpu kvm_run)", errno: errno)
    }
    self.descriptor = descriptor
    self.shared = area.bindMemory(to: kvm_run.self, capacity: 1)
    self.mapSize = mapSize
    self.vm = vm
    // Ask KVM to copy the general-purpose registers into kvm_run at every
    // exit, so reading RIP costs no ioctl.
    lskvm_run_request_sync(shared, lskvm_SYNC_X86_REGS)
  }

  deinit {
    munmap(UnsafeMutableRawPointer(shared), mapSize)
  }

  /// Installs the CPUID table the guest sees.
  public func setCPUID(_ table: CPUIDTable) throws(SystemError) {
    guard let cpuid = lskvm_cpuid2_alloc(UInt32(table.entries.count)) else {
      throw SystemError("calloc(kvm_cpuid2)", errno: ENOMEM)
    }
    defer { free(cpuid) }
    let entries = lskvm_cpuid2_entries(cpuid)
    for (index, entry) in table.entries.enumerated() {
      entries?[index] = entry.kvmEntry
    }
    let fd = descriptor.rawValue
    _ = try systemCall("ioctl(KVM_SET_CPUID2)") { lskvm_ioctl_ptr(fd, lskvm_SET_CPUID2, cpuid) }
  }

  /// The segment, control and descriptor-table registers.
  public func specialRegisters() throws(SystemError) -> kvm_sregs {
    var sregs = kvm_sregs()
    let fd = descriptor.rawValue
    _ = try systemCall("ioctl(KVM_GET_SREGS)") { lskvm_ioctl_ptr(fd, lskvm_GET_SREGS, &sregs) }
    return sregs
  }

  /// Sets the segment, control and descriptor-table registers.
  public func setSpecialRegisters(_ value: kvm_sregs) throws(SystemError) {
    var sregs = value
    let fd = descriptor.rawValue
    _ = try systemCall("ioctl(KVM_SET_SREGS)") { lskvm_ioctl_ptr(fd, lskvm_SET_SREGS, &sregs) }
  }

  /// The general-purpose registers, by ioctl (use ``syncedRegisters`` after an exit).
  public func registers() throws(SystemError) -> kvm_regs {
    var regs = kvm_regs()
    let fd = descriptor.rawValue
    _ = try systemCall("ioctl(KVM_GET_REGS)") { lskvm_ioctl_ptr(fd, lskvm_GET_REGS, &regs) }
    return regs
  }

  /// Sets the general-purpose registers.
  public func setRegisters(_ value: kvm_regs) throws(SystemError) {
    var regs = value
    let fd = descriptor.rawValue
    _ = try systemCall("ioctl(KVM_SET_REGS)") { lskvm_ioctl_ptr(fd, lskvm_SET_REGS, &regs) }
    // KVM_SET_REGS marks the synced copy stale; keep syncing on later exits.
    lskvm_run_request_sync(shared, lskvm_SYNC_X86_REGS)
  }

  /// The general-purpose registers as KVM left them at the last exit
  /// (KVM_CAP_SYNC_REGS), without an ioctl.
  public var syncedRegisters: kvm_regs {
    lskvm_run_sync_regs(shared).pointee
  }

  /// The instruction pointer at the last exit (after the exiting instruction).
  @inline(__always)
  public var syncedInstructionPointer: UInt64 {
    lskvm_run_sync_regs(shared).pointee.rip
  }

  /// A stable hash of the general-purpose registers, RIP and RFLAGS as
  /// KVM left them at the last exit (verify mode).
  public var syncedRegisterHash: UInt64 {
    let regs = lskvm_run_sync_regs(shared).pointee
    var hasher = StableHasher()
    for value in [
      regs.rax, regs.rbx, regs.rcx, regs.rdx, regs.rsi, regs.rdi, regs.rsp, regs.rbp, regs.r8, regs.r9, regs.r10,
      regs.r11, regs.r12, regs.r13, regs.r14, regs.r15, regs.rip, regs.rflags,
    ] {
      hasher.combine(value)
    }
    return hasher.finalize()
  }

  /// The x87/SSE state (what a ring-3 guest without XSAVE can change).
  public func floatingPointState() throws(SystemError) -> kvm_fpu {
    var fpu = kvm_fpu()
    let fd = descriptor.rawValue
    _ = try systemCall("ioctl(KVM_GET_FPU)") { lskvm_ioctl_ptr(fd, lskvm_GET_FPU, &fpu) }
    return fpu
  }

  /// Sets the x87/SSE state.
  public func setFloatingPointState(_ value: kvm_fpu) throws(SystemError) {
    var fpu = value
    let fd = descriptor.rawValue
    _ = try systemCall("ioctl(KVM_SET_FPU)") { lskvm_ioctl_ptr(fd, lskvm_SET_FPU, &fpu) }
  }

  /// Completes whatever the last exit left pending inside KVM (the MMIO
  /// store's instruction retires) without running the guest: KVM_RUN with
  /// `immediate_exit`, as the KVM API prescribes before saving a vCPU's
  /// state between exits.
  public func completePendingExit() throws(SystemError) {
    lskvm_run_set_immediate_exit(shared, 1)
    defer { lskvm_run_set_immediate_exit(shared, 0) }
    let fd = descriptor.rawValue
    _ = try systemCallAllowingInterrupt("ioctl(KVM_RUN, immediate_exit)") { lskvm_ioctl_int(fd, lskvm_RUN, 0) }
  }

  /// Enters the guest until its next exit. Returns what made it exit.
  public func run() throws(SystemError) -> VirtualCPUExit {
    let fd = descriptor.rawValue
    guard try systemCallAllowingInterrupt("ioctl(KVM_RUN)", { lskvm_ioctl_int(fd, lskvm_RUN, 0) }) != nil
    else {
      lskvm_run_set_immediate_exit(shared, 0)
      return .interrupted
    }
    let run = shared
    switch lskvm_run_exit_reason(run) {
    case UInt32(KVM_EXIT_MMIO):
      if lskvm_run_mmio_is_write(run) != 0 {
        return .mmioWrite(
          address: lskvm_run_mmio_address(run), length: lskvm_run_mmio_length(run),
          value: lskvm_run_mmio_data64(run))
      }
      return .mmioRead(address: lskvm_run_mmio_address(run), length: lskvm_run_mmio_length(run))
    case UInt32(KVM_EXIT_INTR):
      return .interrupted
    case UInt32(KVM_EXIT_SHUTDOWN):
      return .shutdown
    case UInt32(KVM_EXIT_HLT):
      return .halt
    case UInt32(KVM_EXIT_IO):
      return .portIO
    case UInt32(KVM_EXIT_INTERNAL_ERROR):
      return .internalError(suberror: lskvm_run_internal_suberror(run))
    case UInt32(KVM_EXIT_FAIL_ENTRY):
      return .failedEntry(reason: lskvm_run_fail_entry_reason(run))
    case let reason:
      return .unhandled(reason: reason)
    }
  }
}
