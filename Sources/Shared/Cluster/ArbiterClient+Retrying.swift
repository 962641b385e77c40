import Logging

extension ArbiterClient {
  /// Test-and-set that waits out an unreachable (or refusing: a decision
  /// that could not be made durable) arbiter: retries every
  /// `retryInterval` while `stillWanted()` holds. A node never goes live
  /// without the arbiter's answer. Returns nil when no longer wanted.
  public func testAndSetRetrying(
    vm: String, expectedGeneration: UInt64, serviceAddress: String, replicationAddress: String,
    retryInterval: Duration = .milliseconds(100), logger: Logger, stillWanted: () -> Bool
  ) -> Outcome? {
    var failures = 0
    while stillWanted() {
      do {
        let outcome = try testAndSet(
          vm: vm, expectedGeneration: expectedGeneration, serviceAddress: serviceAddress,
          replicationAddress: replicationAddress)
        if failures > 0 { logger.info("reached the arbiter again after \(failures) failed attempts") }
        return outcome
      } catch {
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
