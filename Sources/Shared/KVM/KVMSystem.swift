import CLockstepKVM

#if canImport(Glibc)
  import Glibc
#endif

/// The hypervisor: an open /dev/kvm. Creates virtual machines.
public final class KVMSystem {
  /// The descriptor of /dev/kvm.
  let descriptor: FileDescriptorOwner
  /// Bytes to map of each vCPU descriptor (the shared `kvm_run` area).
  let vcpuMapSize: Int

  /// Opens and checks /dev/kvm: API version 12 and the capabilities
  /// Lockstep needs (user memory, synced registers, immediate exit).
  public init(path: String = "/dev/kvm") throws(KVMUnavailable) {
    do {
      descriptor = try FileDescriptorOwner(opening: path, flags: O_RDWR)
    } catch {
      throw KVMUnavailable.from(error, path: path)
    }
    let fd = descriptor.rawValue
    let version = lskvm_ioctl_int(fd, lskvm_GET_API_VERSION, 0)
    guard version == 12 else {
      throw KVMUnavailable(path: path, reason: "KVM API version \(version), expected 12")
    }
    for (capability, name) in [
      (lskvm_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY"),
      (lskvm_CAP_SYNC_REGS, "KVM_CAP_SYNC_REGS"),
      (lskvm_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT"),
    ] where lskvm_ioctl_int(fd, lskvm_CHECK_EXTENSION, UInt(capability)) <= 0 {
      throw KVMUnavailable(path: path, reason: "the kernel's KVM lacks \(name)")
    }
    let size = lskvm_ioctl_int(fd, lskvm_GET_VCPU_MMAP_SIZE, 0)
    guard size > 0 else {
      throw KVMUnavailable(path: path, reason: "KVM_GET_VCPU_MMAP_SIZE returned \(size)")
    }
    vcpuMapSize = Int(size)
  }

  /// Creates an empty virtual machine.
  public func createVirtualMachine() throws(SystemError) -> VirtualMachine {
    let fd = descriptor.rawValue
    let vm = try systemCall("ioctl(KVM_CREATE_VM)") { lskvm_ioctl_int(fd, lskvm_CREATE_VM, 0) }
    return VirtualMachine(descriptor: FileDescriptorOwner(taking: vm), system: self)
  }
}
