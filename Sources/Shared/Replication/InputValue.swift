/// A nondeterministic value that can be written to the log and read back
/// bit-exactly.
public protocol InputValue: Sendable, Equatable {
  /// Appends the value's encoding.
  func encode(into buffer: inout [UInt8])
  /// Reads a value; throws ``LogDecodingError`` on malformed input.
  static func decode(from reader: inout ByteReader) throws(LogDecodingError) -> Self
}
