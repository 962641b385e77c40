/// The log has no more input: the recording was cut short (its recorder was
/// killed) and the replay has reproduced all of it.
public struct LogExhausted: Error, CustomStringConvertible, Sendable {
  /// The exit that asked for the input the log does not have.
  public var point: ExitPoint

  public var description: String { "the log ends before \(point)" }
}
