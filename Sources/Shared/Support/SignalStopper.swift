import Logging

#if canImport(Glibc)
  import Glibc
#endif

/// Turns SIGINT and SIGTERM into a graceful stop of a machine: the signals
/// are blocked in every thread and a dedicated thread waits for them.
public final class SignalStopper: Sendable {
  /// The thread waiting in sigwait; it lives until the process ends.
  let thread: NamedThread

  private init(thread: NamedThread) {
    self.thread = thread
  }

  /// Blocks SIGINT/SIGTERM process-wide (call before starting other
  /// threads) and starts the waiting thread.
  public static func install(control: MachineControl, logger: Logger) throws -> SignalStopper {
    var set = sigset_t()
    sigemptyset(&set)
    sigaddset(&set, SIGINT)
    sigaddset(&set, SIGTERM)
    pthread_sigmask(SIG_BLOCK, &set, nil)
    let waiter = try NamedThread(name: "signals") {
      var signals = sigset_t()
      sigemptyset(&signals)
      sigaddset(&signals, SIGINT)
      sigaddset(&signals, SIGTERM)
      var received: Int32 = 0
      guard sigwait(&signals, &received) == 0 else { return }
      logger.info("signal received, stopping the VM", metadata: ["signal": "\(received)"])
      control.requestStop()
    }
    return SignalStopper(thread: waiter)
  }
}
