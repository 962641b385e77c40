/// The machine could not be built: the message says which input is wrong.
public struct MachineSetupError: Error, CustomStringConvertible, Sendable {
  /// What went wrong.
  public var reason: String

  /// Creates an error.
  public init(_ reason: String) {
    self.reason = reason
  }

  public var description: String { reason }
}
