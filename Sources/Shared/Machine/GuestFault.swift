/// A CPU exception the guest took, as the ring-0 stub reported it.
public struct GuestFault: Sendable, Equatable, CustomStringConvertible {
  /// The exception vector (0-31).
  public var vector: UInt64
  /// The error code the CPU pushed (0 when the exception has none).
  public var errorCode: UInt64
  /// Where it happened.
  public var instructionPointer: UInt64
  /// The stack pointer at the fault.
  public var stackPointer: UInt64
  /// The faulting address, for page faults.
  public var faultAddress: UInt64?
  /// The privilege level the guest was running at (3 for guest code).
  public var privilegeLevel: UInt64

  static let names: [UInt64: String] = [
    0: "#DE divide error", 1: "#DB debug", 2: "NMI", 3: "#BP breakpoint", 4: "#OF overflow",
    5: "#BR bound range", 6: "#UD invalid opcode", 7: "#NM device not available", 8: "#DF double fault",
    10: "#TS invalid TSS", 11: "#NP segment not present", 12: "#SS stack fault",
    13: "#GP general protection", 14: "#PF page fault", 16: "#MF x87 error", 17: "#AC alignment check",
    18: "#MC machine check", 19: "#XM SIMD exception", 20: "#VE virtualization", 21: "#CP control protection",
  ]

  /// The exception's mnemonic and name.
  public var name: String { Self.names[vector] ?? "vector \(vector)" }

  public var description: String {
    var text =
      "\(name) at rip 0x\(String(instructionPointer, radix: 16)) (error code 0x\(String(errorCode, radix: 16)), rsp 0x\(String(stackPointer, radix: 16)), ring \(privilegeLevel))"
    if let faultAddress {
      let access = errorCode & 2 != 0 ? "write" : (errorCode & 16 != 0 ? "instruction fetch" : "read")
      let cause = errorCode & 1 != 0 ? "protection violation" : "not mapped"
      text += ": \(access) of 0x\(String(faultAddress, radix: 16)), \(cause)"
    }
    return text
  }
}
