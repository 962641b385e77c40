/// What a backup's machine switches to when it goes live (paper §2.3):
/// having won the arbiter's test-and-set and replayed every log entry it
/// received, it stops replaying and runs on with live inputs, its own
/// outputs and the service address's network.
///
/// Made and used on the vCPU thread (``Machine/takeover``).
public struct Takeover {
  /// The live input source (recording, once a new backup can join).
  public var inputs: any InputSource
  /// Where output goes from now on.
  public var outputs: any OutputSink
  /// The service address's network, already adopting the guest's
  /// connection table (``NetworkService/adopt(openConnections:highest:)``).
  public var network: (any NetworkPort)?

  /// Creates a takeover.
  public init(inputs: any InputSource, outputs: any OutputSink, network: (any NetworkPort)?) {
    self.inputs = inputs
    self.outputs = outputs
    self.network = network
  }
}
