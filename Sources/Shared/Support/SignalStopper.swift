import Logging
import Synchronization

#if canImport(Glibc)
  import Glibc
#endif

/// Turns SIGINT and SIGTERM into a graceful stop of a machine: the signals
/// are blocked in every thread and one dedicated thread per process waits
/// for them and stops the machine installed last (a node that changes role
/// — a primary that joins as a backup — installs its new machine's control).
public final class SignalStopper: Sendable {
  private static let target = Mutex<(control: MachineControl, logger: Logger)?>(nil)
  private static let started = Atomic<Bool>(false)
  private static let waiter = Mutex<NamedThread?>(nil)

  private init() {}

  /// Blocks SIGINT/SIGTERM process-wide (call before starting other
  /// threads), starts the waiting thread once, and makes `control` the
  /// machine a signal stops.
  public static func install(control: MachineControl, logger: Logger) throws -> SignalStopper {
    target.withLock { $0 = (control, logger) }
    guard !started.exchange(true, ordering: .acquiringAndReleasing) else { return SignalStopper() }
    var set = sigset_t()
    sigemptyset(&set)
    sigaddset(&set, SIGINT)
    sigaddset(&set, SIGTERM)
    pthread_sigmask(SIG_BLOCK, &set, nil)
    let thread = try NamedThread(name: "signals") {
      var signals = sigset_t()
      sigemptyset(&signals)
      sigaddset(&signals, SIGINT)
      sigaddset(&signals, SIGTERM)
      while true {
        var received: Int32 = 0
        guard sigwait(&signals, &received) == 0 else { return }
        guard let (control, logger) = target.withLock({ $0 }) else { continue }
        logger.info("signal received, stopping the VM", metadata: ["signal": "\(received)"])
        control.requestStop()
      }
    }
    waiter.withLock { $0 = thread }
    return SignalStopper()
  }
}
