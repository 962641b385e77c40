/// Why a VM stopped. The VMM reports it and carries on (a guest can only
/// fail itself).
public enum MachineStop: Sendable, Equatable, CustomStringConvertible {
  /// The guest called LS_OP_EXIT.
  case exited(code: Int32)
  /// The guest called LS_OP_ABORT.
  case aborted(message: String, at: ExitPoint)
  /// A CPU exception in the guest.
  case fault(GuestFault)
  /// The guest broke the ABI (bad pointer, length, ring index).
  case guestError(GuestError, at: ExitPoint)
  /// KVM could not run the guest any further.
  case hypervisorError(String)
  /// The input source failed (for a replay: a divergence or the log's end).
  case inputFailed(String, at: ExitPoint)
  /// Someone asked the VM to stop.
  case stopped
  /// A replay reached the exit where the recorded VM was stopped.
  case endOfRecording(at: ExitPoint)

  /// Whether the guest ended by itself with exit code 0.
  public var isCleanExit: Bool { self == .exited(code: 0) }

  public var description: String {
    switch self {
    case .exited(let code): "guest exited with code \(code)"
    case .aborted(let message, let point): "guest aborted at \(point): \(message)"
    case .fault(let fault): "guest fault: \(fault)"
    case .guestError(let error, let point): "guest error at \(point): \(error)"
    case .hypervisorError(let message): "hypervisor error: \(message)"
    case .inputFailed(let message, let point): "input failed at \(point): \(message)"
    case .stopped: "stopped on request"
    case .endOfRecording(let point): "the recording ends at \(point), where the recorded VM was stopped"
    }
  }
}
