import CLockstepKVM

/// The result of LS_OP_BLOCK_READ: a status (LS_OK or LS_EIO) and the bytes.
public struct BlockReadResult: InputValue {
  /// LS_OK or a negative LS_E* code.
  public var status: Int32
  /// The bytes read (empty on error).
  public var bytes: [UInt8]

  /// Creates a result.
  public init(status: Int32, bytes: [UInt8]) {
    self.status = status
    self.bytes = bytes
  }

  public func encode(into buffer: inout [UInt8]) {
    buffer.append(littleEndian: status)
    buffer.append(littleEndian: UInt32(bytes.count))
    buffer.append(contentsOf: bytes)
  }

  public static func decode(from reader: inout ByteReader) throws(LogDecodingError) -> BlockReadResult {
    let status = try reader.read(Int32.self, "block.status")
    let count = try reader.read(UInt32.self, "block.length")
    return BlockReadResult(
      status: status, bytes: try reader.read(count: Int(count), limit: Int(LS_BLOCK_MAX_IO), "block.bytes"))
  }
}
