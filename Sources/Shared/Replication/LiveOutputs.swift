#if canImport(Glibc)
  import Glibc
#endif

/// The output sink of a VM without a backup: console text goes to a file
/// descriptor (stdout by default) at once, network output to the network
/// at once. (A primary with a backup holds output in its OutputGate.)
public final class LiveOutputs: OutputSink {
  let network: (any NetworkPort)?
  let consoleDescriptor: Int32
  private var pendingNetwork = false

  /// Sends network output to `network` and console text to `consoleDescriptor`.
  public init(network: (any NetworkPort)?, consoleDescriptor: Int32 = STDOUT_FILENO) {
    self.network = network
    self.consoleDescriptor = consoleDescriptor
  }

  public func console(_ bytes: UnsafeRawBufferPointer, at point: ExitPoint) {
    writeFully(consoleDescriptor, bytes)
  }

  public func send(_ bytes: UnsafeRawBufferPointer, connection: UInt32, at point: ExitPoint) {
    network?.send(bytes, connection: connection)
    pendingNetwork = true
  }

  public func close(connection: UInt32, at point: ExitPoint) {
    network?.close(connection: connection)
    pendingNetwork = true
  }

  public func flush(at point: ExitPoint) {
    if pendingNetwork {
      network?.flush()
      pendingNetwork = false
    }
  }
}
