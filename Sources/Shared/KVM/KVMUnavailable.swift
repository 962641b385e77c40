#if canImport(Glibc)
  import Glibc
#endif

/// /dev/kvm is missing or cannot be used; the description is one line that
/// says what to do.
public struct KVMUnavailable: Error, CustomStringConvertible, Sendable {
  /// The device path that was tried.
  public var path: String
  /// Why it cannot be used.
  public var reason: String

  public var description: String {
    "\(path) is not usable: \(reason). Lockstep runs guests under Linux KVM and needs /dev/kvm readable and writable by this user (on bare metal: enable virtualization in the firmware and load kvm_intel or kvm_amd; in a container: pass --device /dev/kvm)."
  }

  static func from(_ error: SystemError, path: String) -> KVMUnavailable {
    switch error.errno {
    case ENOENT: KVMUnavailable(path: path, reason: "it does not exist")
    case EACCES, EPERM: KVMUnavailable(path: path, reason: "permission denied")
    default: KVMUnavailable(path: path, reason: error.description)
    }
  }
}
