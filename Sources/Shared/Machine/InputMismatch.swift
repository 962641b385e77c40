/// An input source returned a value that does not fit the call it answers
/// (a replayed log that does not match the execution).
public struct InputMismatch: Error, CustomStringConvertible, Sendable {
  /// What did not match.
  public var reason: String

  /// Creates an error.
  public init(_ reason: String) {
    self.reason = reason
  }

  public var description: String { reason }
}
