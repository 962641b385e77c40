/// Why KVM_RUN returned.
public enum VirtualCPUExit: Equatable, Sendable {
  /// The guest stored `value` (`length` bytes) to an address with no memory.
  case mmioWrite(address: UInt64, length: UInt32, value: UInt64)
  /// The guest loaded from an address with no memory.
  case mmioRead(address: UInt64, length: UInt32)
  /// A signal interrupted KVM_RUN (a kick); the guest did not exit.
  case interrupted
  /// Triple fault.
  case shutdown
  /// HLT (not reachable from ring 3 on ordinary KVM).
  case halt
  /// Port I/O (not used by Lockstep guests).
  case portIO
  /// KVM could not emulate something.
  case internalError(suberror: UInt32)
  /// The CPU refused to enter the guest.
  case failedEntry(reason: UInt64)
  /// Any other KVM exit reason.
  case unhandled(reason: UInt32)
}
