/// Where in the guest's execution an exit happened: its sequence number
/// (exits counted from boot, every exit) and the guest's instruction
/// pointer just after the exiting store. Identical runs exit at identical
/// points; the replayer checks both.
public struct ExitPoint: Sendable, Equatable, Hashable, CustomStringConvertible {
  /// Exits before this one since boot.
  public var sequence: UInt64
  /// Guest RIP after the exiting instruction.
  public var instructionPointer: UInt64

  /// Creates an exit point.
  public init(sequence: UInt64, instructionPointer: UInt64) {
    self.sequence = sequence
    self.instructionPointer = instructionPointer
  }

  public var description: String {
    "exit \(sequence) (rip 0x\(String(instructionPointer, radix: 16)))"
  }
}
