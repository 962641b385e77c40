/// The metrics endpoint could not listen: the message names the address and
/// why.
public struct MetricsEndpointError: Error, CustomStringConvertible, Sendable {
  /// What went wrong.
  public var reason: String

  /// Creates an error.
  public init(_ reason: String) {
    self.reason = reason
  }

  public var description: String { reason }
}
