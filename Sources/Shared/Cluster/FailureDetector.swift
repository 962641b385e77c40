/// How often heartbeats go out and how long a silent peer is trusted.
///
/// Defaults: a heartbeat every **50 ms**, a peer suspected after **1000 ms**
/// with nothing heard from it (no heartbeat and no log/ack traffic).
///
/// - Measured (BENCHMARKS.md, "Failover"): on this 2-core machine, loaded
///   by several VMs, clones and load generators at once, both VMMs of a
///   pair were once descheduled together for 650 ms; 500 ms then raised a
///   false alarm, 1000 ms does not. Twenty intervals also absorb any number
///   of lost datagrams.
/// - Failover stays fast where it matters most: a killed primary process is
///   detected at once by its host resetting the logging channel, not by
///   this timeout (tens of milliseconds, BENCHMARKS.md). The timeout bounds
///   the detection of a dead or cut-off *host*, and how long a primary
///   holds output after losing its backup.
/// - 50 ms costs nothing measurable (about 20 small datagrams a second
///   each way) and gives the receiver many chances inside one timeout.
///
/// Both are configurable (`--heartbeat-interval`, `--failure-timeout`);
/// the timeout must be at least twice the interval.
public struct HeartbeatTiming: Sendable, Equatable {
  /// The default interval: 50 ms.
  public static let defaultInterval: Duration = .milliseconds(50)
  /// The default failure timeout: 1000 ms.
  public static let defaultFailureTimeout: Duration = .milliseconds(1000)
  /// The defaults.
  public static let `default` = HeartbeatTiming(
    uncheckedInterval: defaultInterval, failureTimeout: defaultFailureTimeout)

  /// Time between two heartbeats sent.
  public let interval: Duration
  /// Silence after which the peer is suspected.
  public let failureTimeout: Duration

  /// Checks and creates a timing: the interval positive, the timeout at
  /// least twice the interval; throws otherwise.
  public init(interval: Duration, failureTimeout: Duration) throws(HeartbeatTimingError) {
    guard interval > .zero else { throw HeartbeatTimingError("the heartbeat interval must be positive") }
    guard failureTimeout >= interval * 2 else {
      throw HeartbeatTimingError(
        "the failure timeout (\(failureTimeout)) must be at least twice the heartbeat interval (\(interval))")
    }
    self.init(uncheckedInterval: interval, failureTimeout: failureTimeout)
  }

  private init(uncheckedInterval: Duration, failureTimeout: Duration) {
    interval = uncheckedInterval
    self.failureTimeout = failureTimeout
  }

  /// `interval` in nanoseconds.
  public var intervalNanoseconds: UInt64 { interval.wholeNanoseconds }
  /// `failureTimeout` in nanoseconds.
  public var failureTimeoutNanoseconds: UInt64 { failureTimeout.wholeNanoseconds }
}

/// An invalid ``HeartbeatTiming``.
public struct HeartbeatTimingError: Error, Equatable, Sendable, CustomStringConvertible {
  /// What is wrong.
  public var message: String
  /// Creates an error.
  public init(_ message: String) { self.message = message }
  public var description: String { message }
}

/// Decides whether the peer is suspected of having failed: pure logic on
/// monotonic nanoseconds, fed by its owner with every sign of life (a
/// verified heartbeat, but also log records or acks received) and asked
/// ``isSuspected(now:)``.
///
/// The moment the detector is created counts as hearing from the peer,
/// which gives a peer that is still starting one full timeout before it is
/// suspected.
public struct FailureDetector: Sendable, Equatable {
  /// Silence, in nanoseconds, after which the peer is suspected.
  public let failureTimeoutNanoseconds: UInt64
  /// The last sign of life (or the start), monotonic ns.
  public private(set) var lastHeard: UInt64
  /// Whether anything was heard from the peer since the start.
  public private(set) var hasHeard = false

  /// A detector started at `start` (monotonic ns) that suspects the peer
  /// after `failureTimeout` of silence.
  public init(failureTimeout: Duration = HeartbeatTiming.defaultFailureTimeout, start: UInt64) {
    failureTimeoutNanoseconds = failureTimeout.wholeNanoseconds
    lastHeard = start
  }

  /// Records a sign of life at `time` (monotonic ns). An older time than
  /// one already recorded changes nothing.
  public mutating func heard(at time: UInt64) {
    hasHeard = true
    lastHeard = max(lastHeard, time)
  }

  /// How long the peer has been silent at `now` (0 if `now` is earlier).
  public func silence(now: UInt64) -> UInt64 {
    now > lastHeard ? now - lastHeard : 0
  }

  /// Whether the peer has been silent for longer than the timeout at `now`.
  public func isSuspected(now: UInt64) -> Bool {
    silence(now: now) > failureTimeoutNanoseconds
  }
}
