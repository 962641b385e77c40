import CLockstepLinux

#if canImport(Glibc)
  import Glibc
#endif

/// An eventfd that one thread signals and another waits on with a
/// nanosecond deadline: how the network thread wakes a vCPU blocked in
/// LS_OP_WAIT, and how a stop request reaches it.
public final class Wakeup: Sendable {
  let descriptor: FileDescriptorOwner

  /// Creates an unsignalled wakeup.
  public init() throws(SystemError) {
    let fd = try systemCall("eventfd") { lslinux_eventfd() }
    descriptor = FileDescriptorOwner(taking: fd)
  }

  /// Wakes the waiter (or makes its next wait return at once).
  public func signal() {
    var one: UInt64 = 1
    _ = write(descriptor.rawValue, &one, 8)
  }

  /// Blocks until signalled or until CLOCK_MONOTONIC reaches `deadline`
  /// (nanoseconds), then clears the signal.
  public func wait(untilMonotonic deadline: UInt64) {
    let now = ClockReading.monotonicNanoseconds()
    if deadline > now {
      _ = lslinux_wait_readable(descriptor.rawValue, min(deadline - now, 3_600_000_000_000))
    }
    var value: UInt64 = 0
    _ = read(descriptor.rawValue, &value, 8)
  }
}

extension Wakeup {
  /// Sleeps the calling thread for `milliseconds` (no wakeup involved).
  public static func sleep(milliseconds: Int) {
    _ = lslinux_wait_readable(-1, UInt64(milliseconds) * 1_000_000)
  }
}
