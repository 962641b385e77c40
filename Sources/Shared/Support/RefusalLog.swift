import Logging
import Synchronization

/// Counts refusals by kind and logs each kind at most once a period (with
/// how many were not logged since), so that a peer hammering a port with bad
/// certificates or garbage cannot flood the log; the counts feed status and
/// metrics.
public final class RefusalLog: Sendable {
  /// The kinds of refused connections: a peer with no certificate, one not
  /// signed by the cluster CA, an expired (or not yet valid) one, a valid
  /// certificate of a role not allowed on this port, a handshake that timed
  /// out, anything else that failed the handshake.
  public static func kind(of error: TLSError) -> String {
    let text = error.description
    switch error.code {
    case .peerNotAllowed: return "role"
    case .timedOut: return "timeout"
    default:
      if text.contains("expired") || text.contains("not valid yet") { return "expired" }
      if text.contains("not signed by the cluster CA") || text.contains("unknown ca") { return "untrusted" }
      if text.contains("no certificate") || text.contains("certificate required") { return "no-certificate" }
      return "handshake"
    }
  }

  /// The kinds ``kind(of:)`` returns.
  public static let tlsKinds = ["no-certificate", "untrusted", "expired", "role", "timeout", "handshake"]

  struct Entry {
    var count: UInt64 = 0
    var lastLogged: UInt64?
    var suppressed: UInt64 = 0
  }

  private let entries = Mutex<[String: Entry]>([:])
  private let periodNanoseconds: UInt64
  private let logger: Logger

  /// Logs through `logger`, each kind at most once per `period`.
  public init(logger: Logger, period: Duration = .seconds(60)) {
    self.logger = logger
    periodNanoseconds = period.wholeNanoseconds
  }

  /// Counts one refusal of `kind` and logs `message` at warning level unless
  /// this kind was logged less than a period ago.
  public func record(
    _ kind: String, _ message: @autoclosure () -> String, now: UInt64 = ClockReading.monotonicNanoseconds()
  ) {
    let suppressed = entries.withLock { entries -> UInt64? in
      var entry = entries[kind, default: Entry()]
      defer { entries[kind] = entry }
      entry.count += 1
      if let last = entry.lastLogged, now &- last < periodNanoseconds {
        entry.suppressed += 1
        return nil
      }
      entry.lastLogged = now
      defer { entry.suppressed = 0 }
      return entry.suppressed
    }
    guard let suppressed else { return }
    let more = suppressed > 0 ? " (and \(suppressed) more of this kind not logged in the last minute)" : ""
    logger.warning("refused (\(kind)): \(message())\(more)")
  }

  /// Refusals counted so far, by kind.
  public var counts: [String: UInt64] { entries.withLock { $0.mapValues(\.count) } }

  /// Refusals counted so far, all kinds.
  public var total: UInt64 { entries.withLock { $0.values.reduce(0) { $0 + $1.count } } }
}
