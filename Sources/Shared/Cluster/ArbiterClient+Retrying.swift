import Logging

extension ArbiterClient {
  /// Test-and-set that waits out an unreachable (or refusing: a decision
  /// that could not be made durable) arbiter: retries every
  /// `retryInterval` while `stillWanted()` holds. A node never goes live
  /// without the arbiter's answer. Returns nil when no longer wanted — but
  /// only if no attempt may have reached the arbiter: a request that did
  /// (it timed out, or the connection broke after it was sent) may be
  /// granted, even later, by an arbiter that was paused with it unread, so
  /// the caller must learn the answer and act on it (asking again is safe:
  /// a win already granted is answered as won). Otherwise the arbiter's
  /// record would name a node that never took over (found by the chaos
  /// runner: Tests/Integration/chaos/phantom-grant.sh).
  public func testAndSetRetrying(
    vm: String, expectedGeneration: UInt64, serviceAddress: String, replicationAddress: String,
    retryInterval: Duration = .milliseconds(100), logger: Logger, stillWanted: () -> Bool
  ) -> Outcome? {
    var failures = 0
    var mayHaveArrived = false
    while mayHaveArrived || stillWanted() {
      do {
        let outcome = try testAndSet(
          vm: vm, expectedGeneration: expectedGeneration, serviceAddress: serviceAddress,
          replicationAddress: replicationAddress)
        if failures > 0 { logger.info("reached the arbiter again after \(failures) failed attempts") }
        return outcome
      } catch {
        if error.requestMaySurvive && !mayHaveArrived {
          mayHaveArrived = true
          logger.warning("the test-and-set may have reached the arbiter (\(error.message)): asking until it answers")
        }
        // Logged once, then every 50th attempt: waiting is the point.
        if failures % 50 == 0 {
          logger.warning("\(error.message); waiting for the arbiter, never going live without it")
        }
        failures += 1
        Wakeup.sleep(milliseconds: Int(retryInterval.wholeNanoseconds / 1_000_000))
      }
    }
    return nil
  }
}
