import CLockstepLinux

#if canImport(Glibc)
  import Glibc
#endif

/// A dedicated OS thread with a name (visible in `top -H` and debuggers),
/// for work that blocks: the vCPU in KVM_RUN, the network reactor.
public final class NamedThread: Sendable {
  private let handle: pthread_t

  /// Starts `body` on a new thread called `name` (at most 15 characters
  /// are kept by the kernel).
  public init(name: String, _ body: @escaping @Sendable () -> Void) throws(SystemError) {
    final class Box: Sendable {
      let body: @Sendable () -> Void
      let name: String
      init(_ body: @escaping @Sendable () -> Void, name: String) {
        self.body = body
        self.name = name
      }
    }
    let box = Unmanaged.passRetained(Box(body, name: name)).toOpaque()
    var thread = pthread_t()
    let status = pthread_create(
      &thread, nil,
      { raw in
        guard let raw else { return nil }
        let box = Unmanaged<Box>.fromOpaque(raw).takeRetainedValue()
        lslinux_set_thread_name(String(box.name.prefix(15)))
        box.body()
        return nil
      }, box)
    guard status == 0 else {
      Unmanaged<Box>.fromOpaque(box).release()
      throw SystemError("pthread_create(\(name))", errno: status)
    }
    handle = thread
  }

  /// Waits for the thread to finish. Call once, and not after ``detach()``.
  public func join() {
    _ = pthread_join(handle, nil)
  }

  /// Lets the thread finish on its own: nobody joins it, and its resources
  /// are freed when it ends. Call once, instead of ``join()``.
  public func detach() {
    _ = pthread_detach(handle)
  }
}
