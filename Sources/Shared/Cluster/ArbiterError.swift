/// Why the arbiter, its store or a client of it failed.
public struct ArbiterError: Error, CustomStringConvertible, Sendable, Equatable {
  /// What kind of failure.
  public enum Kind: String, Sendable, Equatable {
    /// A state file cannot be read, written or synced.
    case storage
    /// A record file holds no valid record.
    case corruptRecord
    /// The arbiter cannot be reached, or the connection failed.
    case unreachable
    /// The arbiter accepted the request but did not answer in time (it may
    /// have decided: ask again, which is always safe).
    case timedOut
    /// The arbiter answered with an error (refused the request).
    case refused
    /// The peer sent something the protocol does not allow.
    case protocolViolation
  }

  /// What kind of failure.
  public var kind: Kind
  /// What happened, for people.
  public var message: String
  /// Whether the request may have reached the arbiter (false only when no
  /// connection could be made): a test-and-set that may have arrived may
  /// also have been granted, later even (an arbiter paused with it unread).
  public var requestMaySurvive = true

  /// Creates an error.
  public init(_ kind: Kind, _ message: String) {
    self.kind = kind
    self.message = message
  }

  public var description: String { message }
}
