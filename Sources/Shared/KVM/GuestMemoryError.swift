/// A guest-supplied address range that is not inside guest RAM.
public struct GuestMemoryError: Error, CustomStringConvertible, Sendable, Equatable {
  /// The first byte.
  public var address: UInt64
  /// The length.
  public var count: UInt64
  /// Bytes of guest RAM.
  public var memorySize: UInt64
  /// The lowest address the guest may name.
  public var userBase: UInt64

  public var description: String {
    "range [0x\(String(address, radix: 16)), +0x\(String(count, radix: 16))) is outside guest memory [0x\(String(userBase, radix: 16)), 0x\(String(memorySize, radix: 16)))"
  }
}
