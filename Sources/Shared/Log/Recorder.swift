/// The recording side of the input seam: obtains every nondeterministic
/// input live, hands it to the guest, and appends it to the log as an
/// entry `{exit sequence, RIP, kind, payload}`. Deterministic exits are
/// not logged; their count is implied by the sequence numbers.
public final class Recorder: InputSource {
  let writer: any LogSink
  /// Entries recorded.
  public private(set) var entries: UInt64 = 0

  /// Starts a log at `writer` for the execution `header` describes.
  public init(writer: any LogSink, header: LogHeader) throws {
    self.writer = writer
    try writer.append(.header(header))
  }

  public func input<Value: InputValue>(
    _ kind: InputKind, at point: ExitPoint, live: () throws -> Value
  ) throws -> Value {
    let value = try live()
    var payload: [UInt8] = []
    value.encode(into: &payload)
    try writer.append(.input(point: point, kind: kind, payload: payload))
    entries += 1
    return value
  }

  public func machineStopped(_ report: MachineReport) throws {
    try writer.append(
      .end(
        exits: report.exits, traceDigest: report.traceDigest, memoryDigest: report.memoryDigest,
        reason: "\(report.stop)"))
    try writer.finish()
  }
}
