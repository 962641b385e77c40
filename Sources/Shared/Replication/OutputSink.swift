/// Where the guest's output goes: console text, bytes to a client, a close.
///
/// Each call carries the exit that produced it, which is the log position
/// the Output Rule waits on: a standalone VM releases output at once, a
/// primary holds it until the backup has acknowledged that position, and a
/// replaying backup discards it.
public protocol OutputSink: AnyObject {
  /// The guest wrote to its console.
  func console(_ bytes: UnsafeRawBufferPointer, at point: ExitPoint)
  /// The guest sent bytes on a connection.
  func send(_ bytes: UnsafeRawBufferPointer, connection: UInt32, at point: ExitPoint)
  /// The guest closed a connection (after the bytes sent before).
  func close(connection: UInt32, at point: ExitPoint)
  /// The exit at `point` finished; outputs produced by it are complete.
  /// Called once per exit that produced output, so a sink can batch.
  func flush(at point: ExitPoint)
}
