import CLockstepKVM
import Synchronization

#if canImport(Glibc)
  import Glibc
#endif

/// How other threads stop a running machine: a flag the vCPU loop checks
/// before every KVM_RUN, the wakeup that ends a blocking LS_OP_WAIT, and a
/// signal that interrupts KVM_RUN itself.
public final class MachineControl: Sendable {
  private let stopFlag = Atomic<Bool>(false)
  private let thread = Atomic<UInt>(0)
  private let running = Atomic<Bool>(false)
  /// Ends a blocking wait.
  public let wakeup: Wakeup

  /// Creates a control with its own wakeup.
  public init() throws(SystemError) {
    wakeup = try Wakeup()
    lskvm_install_kick_handler()
  }

  /// Whether a stop was requested.
  public var stopRequested: Bool { stopFlag.load(ordering: .acquiring) }

  func enter() {
    thread.store(UInt(pthread_self()), ordering: .releasing)
    running.store(true, ordering: .releasing)
  }

  func leave() {
    running.store(false, ordering: .releasing)
  }

  /// Asks the machine to stop and kicks its vCPU until it has (at most
  /// `timeoutMilliseconds`). Returns whether it stopped in time.
  @discardableResult
  public func requestStop(timeoutMilliseconds: Int = 5000) -> Bool {
    stopFlag.store(true, ordering: .releasing)
    wakeup.signal()
    for _ in 0..<max(1, timeoutMilliseconds) {
      guard running.load(ordering: .acquiring) else { return true }
      let target = thread.load(ordering: .acquiring)
      if target != 0 { pthread_kill(pthread_t(target), lskvm_KICK_SIGNAL) }
      usleep(1000)
    }
    return !running.load(ordering: .acquiring)
  }
}
