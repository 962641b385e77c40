/// Where in the guest's execution an exit happened: its sequence number
/// (exits counted from boot, every exit) and the guest's instruction
/// pointer just after the exiting store. Identical runs exit at identical
/// points; the replayer checks both.
public struct ExitPoint: Sendable, Equatable, Hashable, CustomStringConvertible {
  /// Exits before this one since boot.
  public var sequence: UInt64
  /// Guest RIP after the exiting instruction.
  public var instructionPointer: UInt64
  /// A hash of every general-purpose register and RFLAGS at the exit, in
  /// verify mode (`--verify-registers`); nil otherwise.
  public var registerHash: UInt64?

  /// Creates an exit point.
  public init(sequence: UInt64, instructionPointer: UInt64, registerHash: UInt64? = nil) {
    self.sequence = sequence
    self.instructionPointer = instructionPointer
    self.registerHash = registerHash
  }

  /// Whether a replayed exit is the recorded one: same sequence and RIP,
  /// and the same registers when both sides hashed them.
  public func matches(_ recorded: ExitPoint) -> Bool {
    guard sequence == recorded.sequence, instructionPointer == recorded.instructionPointer else { return false }
    guard let mine = registerHash, let theirs = recorded.registerHash else { return true }
    return mine == theirs
  }

  public var description: String {
    let registers = registerHash.map { ", registers \(String($0, radix: 16))" } ?? ""
    return "exit \(sequence) (rip 0x\(String(instructionPointer, radix: 16))\(registers))"
  }
}
