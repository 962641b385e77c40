/// The output sink of a replaying VM: everything the guest sends is thrown
/// away (the primary already sent it). Console text can be kept visible
/// for debugging.
public final class DiscardingOutputs: OutputSink {
  let console: LiveOutputs?

  /// Discards all output; with `consoleDescriptor`, console text is still
  /// written there.
  public init(consoleDescriptor: Int32? = nil) {
    console = consoleDescriptor.map { LiveOutputs(network: nil, consoleDescriptor: $0) }
  }

  public func console(_ bytes: UnsafeRawBufferPointer, at point: ExitPoint) {
    console?.console(bytes, at: point)
  }

  public func send(_ bytes: UnsafeRawBufferPointer, connection: UInt32, at point: ExitPoint) {}

  public func close(connection: UInt32, at point: ExitPoint) {}

  public func flush(at point: ExitPoint) {}
}
