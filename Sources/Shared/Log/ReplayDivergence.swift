/// The replayed execution left the recorded one: at `point` the log says
/// one thing and the guest did another.
public struct ReplayDivergence: Error, CustomStringConvertible, Sendable, Equatable {
  /// Where the replay noticed.
  public var point: ExitPoint
  /// What the log has there.
  public var expected: String
  /// What the guest did.
  public var actual: String

  public var description: String {
    "replay divergence at \(point): the log has \(expected), the guest asked for \(actual)"
  }
}
