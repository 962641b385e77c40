/// Malformed log or wire data: what was wrong, precisely enough to find it.
public struct LogDecodingError: Error, CustomStringConvertible, Sendable, Equatable {
  /// What was wrong.
  public var reason: String

  /// Creates an error.
  public init(_ reason: String) {
    self.reason = reason
  }

  public var description: String { "malformed log data: \(reason)" }
}
