/// The replay reached the exit at which the recorded VM was stopped (the
/// recording's end record names it): not a divergence, the end of the road.
public struct RecordingEnded: Error, CustomStringConvertible, Sendable {
  /// The exit where the recording stopped.
  public var point: ExitPoint

  public var description: String { "the recording ends at \(point)" }
}
