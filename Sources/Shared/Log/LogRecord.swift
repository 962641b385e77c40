/// One record of a Lockstep log (docs/log-format.md): the header that
/// identifies the execution, an input the guest observed at an exit, a
/// heartbeat, or the end of the recording.
public enum LogRecord: Sendable, Equatable {
  /// What execution this log belongs to. First in every log.
  case header(LogHeader)
  /// A nondeterministic input, consumed at exit `point`.
  case input(point: ExitPoint, kind: InputKind, payload: [UInt8])
  /// The recording ended: how many exits ran and the final state.
  case end(exits: UInt64, traceDigest: UInt64, memoryDigest: UInt64, reason: String)
  /// The log is complete up to (not including) exit `exits`: sent when the
  /// primary produces output and, idle, as a heartbeat, so the backup can
  /// acknowledge positions that have no input entry.
  case progress(exits: UInt64)

  /// The record type byte on the wire.
  var type: UInt8 {
    switch self {
    case .header: 1
    case .input: 2
    case .end: 3
    case .progress: 4
    }
  }
}
