#if canImport(Glibc)
  import Glibc
#endif

/// A failed system call: the operation that failed and the errno it set.
public struct SystemError: Error, CustomStringConvertible, Sendable, Equatable {
  /// What was being done, e.g. `"ioctl(KVM_CREATE_VM)"` or `"open(/dev/kvm)"`.
  public var operation: String
  /// The errno value.
  public var errno: Int32

  /// Creates an error for `operation` that failed with `errno`.
  public init(_ operation: String, errno: Int32) {
    self.operation = operation
    self.errno = errno
  }

  public var description: String {
    let message = strerror(errno).map { String(cString: $0) } ?? "unknown error"
    return "\(operation) failed: \(message) (errno \(errno))"
  }
}
