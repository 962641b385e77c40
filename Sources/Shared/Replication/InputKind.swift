/// The kinds of nondeterministic input a guest can observe. Each is one
/// kind of log entry; the raw value is its tag on the wire and on disk.
public enum InputKind: UInt8, Sendable, CaseIterable, CustomStringConvertible {
  /// LS_OP_CLOCK: monotonic and wall time.
  case clock = 1
  /// LS_OP_ENTROPY: random bytes.
  case entropy = 2
  /// LS_OP_WAIT: which inputs arrived (network events) and when.
  case wait = 3
  /// LS_OP_BLOCK_READ: the bytes read from the disk (disks may differ).
  case blockRead = 4

  public var description: String {
    switch self {
    case .clock: "clock"
    case .entropy: "entropy"
    case .wait: "wait"
    case .blockRead: "block-read"
    }
  }
}
