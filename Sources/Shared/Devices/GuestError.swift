/// The guest broke the ABI (a bad pointer, length or ring index). The VM is
/// stopped with this message; the VMM itself is unaffected.
public struct GuestError: Error, CustomStringConvertible, Sendable, Equatable {
  /// What the guest did wrong.
  public var reason: String

  /// Creates an error.
  public init(_ reason: String) {
    self.reason = reason
  }

  public var description: String { reason }
}
