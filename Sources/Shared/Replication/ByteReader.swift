/// Reads little-endian integers and byte strings from a buffer, refusing to
/// read past its end. The base of every decoder in Lockstep.
public struct ByteReader: Sendable {
  /// The bytes being read.
  public let bytes: [UInt8]
  /// The next byte to read.
  public private(set) var offset: Int

  /// A reader at the start of `bytes`.
  public init(_ bytes: [UInt8]) {
    self.bytes = bytes
    self.offset = 0
  }

  /// Bytes not yet read.
  public var remaining: Int { bytes.count - offset }

  /// Reads a little-endian integer.
  public mutating func read<T: FixedWidthInteger>(_: T.Type, _ field: String) throws(LogDecodingError) -> T {
    let size = MemoryLayout<T>.size
    guard remaining >= size else {
      throw LogDecodingError("\(field): needs \(size) bytes at offset \(offset), only \(remaining) left")
    }
    var value: T = 0
    for index in 0..<size {
      value |= T(bytes[offset + index]) << (8 * index)
    }
    offset += size
    return value
  }

  /// Reads `count` bytes; `limit` bounds what a length field may claim.
  public mutating func read(count: Int, limit: Int, _ field: String) throws(LogDecodingError) -> [UInt8] {
    guard count >= 0, count <= limit else {
      throw LogDecodingError("\(field): length \(count) exceeds the limit \(limit)")
    }
    guard remaining >= count else {
      throw LogDecodingError("\(field): needs \(count) bytes at offset \(offset), only \(remaining) left")
    }
    let slice = Array(bytes[offset..<(offset + count)])
    offset += count
    return slice
  }

  /// Throws unless every byte was read.
  public func expectEnd(_ what: String) throws(LogDecodingError) {
    guard remaining == 0 else {
      throw LogDecodingError("\(what): \(remaining) unexpected trailing bytes")
    }
  }
}

extension Array where Element == UInt8 {
  /// Appends a little-endian integer.
  @inline(__always)
  public mutating func append<T: FixedWidthInteger>(littleEndian value: T) {
    Swift.withUnsafeBytes(of: value.littleEndian) { append(contentsOf: $0) }
  }
}
