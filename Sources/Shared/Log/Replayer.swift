/// The replaying side of the input seam: returns each logged input at the
/// exit where it was recorded, and stops the execution at the first exit
/// where the guest asks for something the log does not have there.
public final class Replayer: InputSource {
  let reader: any LogSource
  /// The log's header.
  public let header: LogHeader
  /// Inputs replayed.
  public private(set) var replayed: UInt64 = 0
  /// The end record, once read.
  public private(set) var end: LogRecord?
  /// The first divergence, once found.
  public private(set) var divergence: ReplayDivergence?
  /// Where the log ran out (a recording cut short), if it did.
  public private(set) var exhaustedAt: ExitPoint?

  /// Opens a log and reads its header.
  public init(reader: any LogSource) throws {
    self.reader = reader
    guard case .header(let header) = try reader.next() else {
      throw LogDecodingError("the log does not start with a header record")
    }
    self.header = header
  }

  public func input<Value: InputValue>(
    _ kind: InputKind, at point: ExitPoint, live: () throws -> Value
  ) throws -> Value {
    guard let record = try nextRecord() else {
      exhaustedAt = point
      throw LogExhausted(point: point)
    }
    guard case .input(let recorded, let recordedKind, let payload) = record else {
      if case .end(let exits, _, _, _) = record {
        end = record
        // The recorded VM was stopped at this exit (before handling it).
        if point.sequence == exits { throw RecordingEnded(point: point) }
      }
      let divergence = ReplayDivergence(point: point, expected: "the end of the recording", actual: "\(kind) input")
      self.divergence = divergence
      throw divergence
    }
    guard point.matches(recorded), recordedKind == kind else {
      let divergence = ReplayDivergence(
        point: point, expected: "\(recordedKind) at \(recorded)", actual: "\(kind) at \(point)")
      self.divergence = divergence
      throw divergence
    }
    var body = ByteReader(payload)
    let value = try Value.decode(from: &body)
    try body.expectEnd("\(kind) entry at \(point)")
    replayed += 1
    return value
  }

  /// Whether inputs remain that the execution did not consume (a replay
  /// that stopped early diverged).
  public func remainingInput() throws -> LogRecord? {
    let record = try nextRecord()
    if case .end = record { end = record }
    if case .input = record { return record }
    return nil
  }

  /// The next input or end record (progress records only mark positions).
  private func nextRecord() throws -> LogRecord? {
    while let record = try reader.next() {
      switch record {
      case .header: throw LogDecodingError("a second header record in the middle of the log")
      case .progress: continue
      default: return record
      }
    }
    return nil
  }
}
