#if canImport(Glibc)
  import Glibc
#endif

/// Owns a kernel file descriptor and closes it exactly once, when the owner
/// goes away. Move-only, so the descriptor cannot be closed twice.
public struct FileDescriptorOwner: ~Copyable, Sendable {
  /// The raw descriptor; valid for the owner's lifetime.
  public let rawValue: Int32

  /// Takes ownership of `rawValue`.
  public init(taking rawValue: Int32) {
    self.rawValue = rawValue
  }

  /// Opens `path` with `flags` (O_CLOEXEC is always added).
  public init(opening path: String, flags: Int32, mode: mode_t = 0) throws(SystemError) {
    let descriptor = try systemCall("open(\(path))") { open(path, flags | O_CLOEXEC, mode) }
    self.init(taking: descriptor)
  }

  deinit {
    close(rawValue)
  }
}
