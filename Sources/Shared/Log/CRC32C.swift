/// CRC-32C (Castagnoli), the checksum of every log frame. Detects torn
/// writes and corrupted bytes; it is not a defence against an attacker
/// (the channel's TLS is).
public enum CRC32C {
  static let table: [UInt32] = (0..<256).map { index in
    var value = UInt32(index)
    for _ in 0..<8 {
      value = value & 1 != 0 ? (value >> 1) ^ 0x82F6_3B78 : value >> 1
    }
    return value
  }

  /// The checksum of `bytes`, continuing from `crc` (0 to start).
  public static func checksum(_ bytes: some Sequence<UInt8>, continuing crc: UInt32 = 0) -> UInt32 {
    var value = ~crc
    table.withUnsafeBufferPointer { table in
      for byte in bytes {
        value = table[Int((value ^ UInt32(byte)) & 0xFF)] ^ (value >> 8)
      }
    }
    return ~value
  }
}
