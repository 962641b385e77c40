/// How the last clone into a new backup went (logged, and in status).
public struct CloneReport: Sendable, Equatable {
  /// From the join to the clone holding the VM.
  public var totalMilliseconds: UInt64
  /// How long the guest paused for the last pages and the state.
  public var pauseMicroseconds: UInt64
  /// Bytes sent (memory, disk, state, framing).
  public var bytes: UInt64
}
