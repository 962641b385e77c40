import CLockstepKVM

#if canImport(Glibc)
  import Glibc
#endif

/// A KVM virtual machine: its memory slots and its vCPU.
public final class VirtualMachine {
  let descriptor: FileDescriptorOwner
  /// Kept alive for as long as the VM exists.
  let system: KVMSystem

  init(descriptor: consuming FileDescriptorOwner, system: KVMSystem) {
    self.descriptor = descriptor
    self.system = system
  }

  /// Maps `memory` into the guest at guest-physical address 0 as slot 0.
  /// With `logDirtyPages`, KVM tracks writes for ``dirtyPages(slot:pages:)``.
  public func map(_ memory: GuestMemory, slot: UInt32 = 0, logDirtyPages: Bool = false)
    throws(SystemError)
  {
    var region = kvm_userspace_memory_region(
      slot: slot,
      flags: logDirtyPages ? lskvm_MEM_LOG_DIRTY_PAGES : 0,
      guest_phys_addr: 0,
      memory_size: memory.size,
      userspace_addr: UInt64(UInt(bitPattern: memory.base))
    )
    let fd = descriptor.rawValue
    _ = try systemCall("ioctl(KVM_SET_USER_MEMORY_REGION)") {
      lskvm_ioctl_ptr(fd, lskvm_SET_USER_MEMORY_REGION, &region)
    }
  }

  /// The pages of slot `slot` (`pageCount` 4 KiB pages) written since the
  /// last call, as a bitmap of 64-page words; KVM clears it (the slot must
  /// be mapped with `logDirtyPages`).
  public func dirtyPages(slot: UInt32 = 0, pageCount: UInt64) throws(SystemError) -> [UInt64] {
    var bitmap = [UInt64](repeating: 0, count: Int((pageCount + 63) / 64))
    let fd = descriptor.rawValue
    let result = bitmap.withUnsafeMutableBytes { buffer -> Int32 in
      var log = kvm_dirty_log()
      log.slot = slot
      log.dirty_bitmap = buffer.baseAddress
      return lskvm_ioctl_ptr(fd, lskvm_GET_DIRTY_LOG, &log)
    }
    if result < 0 { throw SystemError("ioctl(KVM_GET_DIRTY_LOG)", errno: errno) }
    return bitmap
  }

  /// Creates vCPU `index`.
  public func createVirtualCPU(index: UInt32 = 0) throws(SystemError) -> VirtualCPU {
    let fd = descriptor.rawValue
    let vcpu = try systemCall("ioctl(KVM_CREATE_VCPU)") {
      lskvm_ioctl_int(fd, lskvm_CREATE_VCPU, UInt(index))
    }
    return try VirtualCPU(descriptor: FileDescriptorOwner(taking: vcpu), mapSize: system.vcpuMapSize, vm: self)
  }
}
