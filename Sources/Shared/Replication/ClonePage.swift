/// One 4 KiB page of guest RAM in a clone transfer: its data, or nil when
/// it is all zeros (most of a fresh guest's RAM is).
public struct ClonePage: Sendable, Equatable {
  /// The page number (guest-physical address / 4096).
  public var number: UInt64
  /// The page's 4096 bytes, or nil for a zero page.
  public var data: [UInt8]?

  /// Creates a page.
  public init(number: UInt64, data: [UInt8]?) {
    self.number = number
    self.data = data
  }

  /// A page from its bytes: nil data when they are all zero.
  public static func copying(_ number: UInt64, _ bytes: [UInt8]) -> ClonePage {
    ClonePage(number: number, data: bytes.withUnsafeBytes(isZero) ? nil : bytes)
  }

  /// Whether every byte is zero (eight at a time).
  public static func isZero(_ bytes: UnsafeRawBufferPointer) -> Bool {
    let words = bytes.count / 8
    var index = 0
    while index < words {
      if bytes.loadUnaligned(fromByteOffset: index * 8, as: UInt64.self) != 0 { return false }
      index += 1
    }
    return bytes[(words * 8)...].allSatisfy { $0 == 0 }
  }
}
