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
  /// Work for the vCPU thread between two exits (cloning), and whether any
  /// is waiting (checked before every KVM_RUN without taking the lock).
  private let safepoints = Mutex<[@Sendable (Machine) -> Void]>([])
  private let safepointPending = Atomic<Bool>(false)
  private let ended = Atomic<Bool>(false)
  private let exitsHandled = Atomic<UInt64>(0)
  /// Ends a blocking wait.
  public let wakeup: Wakeup
  /// Signalled when safepoint work finished (or never will).
  private let safepointsEnded: Wakeup

  /// Creates a control with its own wakeup.
  public init() throws(SystemError) {
    wakeup = try Wakeup()
    safepointsEnded = try Wakeup()
    lskvm_install_kick_handler()
  }

  /// Whether a stop was requested.
  public var stopRequested: Bool { stopFlag.load(ordering: .acquiring) }

  /// The machine's exit count as of its last handled exit (for status and
  /// metrics; the vCPU thread publishes it with one relaxed store per exit).
  public var exits: UInt64 { exitsHandled.load(ordering: .relaxed) }

  func publishExits(_ count: UInt64) {
    exitsHandled.store(count, ordering: .relaxed)
  }

  func enter() {
    thread.store(UInt(pthread_self()), ordering: .releasing)
    running.store(true, ordering: .releasing)
  }

  func leave() {
    running.store(false, ordering: .releasing)
    ended.store(true, ordering: .releasing)
    // Whoever waits for a safepoint learns that none will come.
    let abandoned = safepoints.withLock { pending in
      defer { pending = [] }
      return pending
    }
    safepointPending.store(false, ordering: .releasing)
    withExtendedLifetime(abandoned) {}
    safepointsEnded.signal()
  }

  /// Whether work waits for a safepoint.
  var hasSafepoint: Bool { safepointPending.load(ordering: .acquiring) }

  /// Runs the work waiting for a safepoint, on the vCPU thread.
  func runSafepoints(_ machine: Machine) {
    let work = safepoints.withLock { pending in
      defer { pending = [] }
      safepointPending.store(false, ordering: .releasing)
      return pending
    }
    for item in work { item(machine) }
  }

  /// Queues `body` to run on the vCPU thread between two exits, without
  /// waiting (also from the vCPU thread itself: it runs after the current
  /// exit).
  public func requestSafepoint(_ body: @escaping @Sendable (Machine) -> Void) {
    safepoints.withLock { pending in
      pending.append(body)
      safepointPending.store(true, ordering: .releasing)
    }
  }

  /// Runs `body` on the vCPU thread between two exits (the guest paused
  /// for as long as it takes) and returns its result; nil when the machine
  /// is not running or stops first, or after `timeout`.
  public func atSafepoint<Result: Sendable>(
    timeout: Duration = .seconds(30), _ body: @escaping @Sendable (Machine) -> Result
  ) -> Result? {
    guard running.load(ordering: .acquiring) else { return nil }
    let box = Mutex<Result?>(nil)
    let done = Atomic<Bool>(false)
    requestSafepoint { machine in
      box.withLock { $0 = body(machine) }
      done.store(true, ordering: .releasing)
      self.safepointsEnded.signal()
    }
    // Out of a blocking wait, out of KVM_RUN.
    wakeup.signal()
    let deadline = ClockReading.monotonicNanoseconds() + timeout.wholeNanoseconds
    var rounds = 0
    while !done.load(ordering: .acquiring) {
      if ended.load(ordering: .acquiring) || ClockReading.monotonicNanoseconds() >= deadline { return nil }
      // Kick the vCPU out of KVM_RUN now and every 5 ms after (a guest
      // computing without exits; the signal is a no-op elsewhere).
      if rounds % 5 == 0 {
        let target = thread.load(ordering: .acquiring)
        if target != 0 && running.load(ordering: .acquiring) { pthread_kill(pthread_t(target), lskvm_KICK_SIGNAL) }
      }
      rounds += 1
      safepointsEnded.wait(untilMonotonic: ClockReading.monotonicNanoseconds() + 1_000_000)
    }
    return box.withLock { $0 }
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
