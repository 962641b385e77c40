/// The framing of log records on disk and on the wire (docs/log-format.md):
///
///     u32 length    bytes of body (little-endian)
///     u8  version   LogHeader.currentFormat's low byte (1)
///     u8  type      1 header, 2 input, 3 end, 4 progress
///     u16 reserved  0
///     body          `length` bytes
///     u32 crc32c    of version, type, reserved and body
///
/// The decoder refuses anything malformed with a ``LogDecodingError`` that
/// says what and where; it never trusts a length beyond ``maximumBody``.
public enum LogFrame {
  /// The largest body a frame may carry (a 1 MiB block read plus framing).
  public static let maximumBody = (1 << 20) + 4096
  /// Bytes of framing around a body.
  public static let overhead = 12

  /// Appends the framed `record` to `buffer`.
  public static func encode(_ record: LogRecord, into buffer: inout [UInt8]) {
    var body: [UInt8] = []
    switch record {
    case .header(let header):
      body.append(contentsOf: LogHeader.magic)
      body.append(littleEndian: header.format)
      body.appendString(header.vm)
      body.append(littleEndian: header.imageDigest)
      body.append(littleEndian: header.memorySize)
      body.append(littleEndian: header.cpuidFingerprint)
      body.appendString(header.arguments)
      body.append(littleEndian: header.diskSize)
      body.append(header.verifiesRegisters ? 1 : 0)
    case .input(let point, let kind, let payload):
      body.append(littleEndian: point.sequence)
      body.append(littleEndian: point.instructionPointer)
      // The kind's top bit says a register hash follows (verify mode).
      body.append(kind.rawValue | (point.registerHash != nil ? 0x80 : 0))
      if let hash = point.registerHash { body.append(littleEndian: hash) }
      body.append(contentsOf: payload)
    case .end(let exits, let traceDigest, let memoryDigest, let reason):
      body.append(littleEndian: exits)
      body.append(littleEndian: traceDigest)
      body.append(littleEndian: memoryDigest)
      body.appendString(reason)
    case .progress(let exits):
      body.append(littleEndian: exits)
    }
    frame(type: record.type, body: body, into: &buffer)
  }

  /// Appends one frame of `type` around `body`.
  public static func frame(type: UInt8, body: [UInt8], into buffer: inout [UInt8]) {
    let start = buffer.count
    buffer.append(littleEndian: UInt32(body.count))
    buffer.append(UInt8(truncatingIfNeeded: LogHeader.currentFormat))
    buffer.append(type)
    buffer.append(littleEndian: UInt16(0))
    buffer.append(contentsOf: body)
    let crc = CRC32C.checksum(buffer[(start + 4)...])
    buffer.append(littleEndian: crc)
  }

  /// Checks the frame at the start of `bytes` and returns its type and
  /// body, or nil when more bytes are needed.
  public static func unframe(_ bytes: ArraySlice<UInt8>, at position: UInt64 = 0) throws(LogDecodingError)
    -> (type: UInt8, body: ByteReader, size: Int)?
  {
    guard bytes.count >= 4 else { return nil }
    let base = bytes.startIndex
    let length = Int(
      UInt32(bytes[base]) | UInt32(bytes[base + 1]) << 8 | UInt32(bytes[base + 2]) << 16
        | UInt32(bytes[base + 3]) << 24)
    guard length <= maximumBody else {
      throw LogDecodingError("frame at byte \(position): length \(length) exceeds the maximum \(maximumBody)")
    }
    let size = length + overhead
    guard bytes.count >= size else { return nil }
    let frame = bytes[base..<(base + size)]
    let version = frame[base + 4]
    let type = frame[base + 5]
    let reserved = UInt16(frame[base + 6]) | UInt16(frame[base + 7]) << 8
    let stored =
      UInt32(frame[base + size - 4]) | UInt32(frame[base + size - 3]) << 8 | UInt32(frame[base + size - 2]) << 16
      | UInt32(frame[base + size - 1]) << 24
    let computed = CRC32C.checksum(frame[(base + 4)..<(base + size - 4)])
    guard stored == computed else {
      throw LogDecodingError(
        "frame at byte \(position): checksum 0x\(String(stored, radix: 16)) does not match its contents (0x\(String(computed, radix: 16))): the data is corrupt"
      )
    }
    guard version == UInt8(truncatingIfNeeded: LogHeader.currentFormat) else {
      throw LogDecodingError(
        "frame at byte \(position): format version \(version), this build reads \(LogHeader.currentFormat)")
    }
    guard reserved == 0 else { throw LogDecodingError("frame at byte \(position): reserved field is \(reserved)") }
    return (type, ByteReader(Array(frame[(base + 8)..<(base + size - 4)])), size)
  }

  /// Decodes one frame from the start of `bytes`. Returns nil when more
  /// bytes are needed, else the record and the bytes it took.
  public static func decode(_ bytes: ArraySlice<UInt8>, at position: UInt64 = 0) throws(LogDecodingError)
    -> (record: LogRecord, size: Int)?
  {
    guard let (type, reader, size) = try unframe(bytes, at: position) else { return nil }
    return (try record(type: type, body: reader, at: position), size)
  }

  /// Decodes the body of a log record of `type`.
  static func record(type: UInt8, body: ByteReader, at position: UInt64) throws(LogDecodingError) -> LogRecord {
    var body = body
    let record: LogRecord
    switch type {
    case 1:
      let magic = try body.read(count: LogHeader.magic.count, limit: 16, "header.magic")
      guard magic == LogHeader.magic else {
        throw LogDecodingError("frame at byte \(position): not a Lockstep log header")
      }
      record = .header(
        LogHeader(
          format: try body.read(UInt16.self, "header.format"), vm: try body.readString("header.vm"),
          imageDigest: try body.read(UInt64.self, "header.image"),
          memorySize: try body.read(UInt64.self, "header.memory"),
          cpuidFingerprint: try body.read(UInt64.self, "header.cpuid"),
          arguments: try body.readString("header.arguments"),
          diskSize: try body.read(UInt64.self, "header.disk"),
          verifiesRegisters: try body.read(UInt8.self, "header.flags") & 1 != 0))
    case 2:
      let sequence = try body.read(UInt64.self, "input.sequence")
      let rip = try body.read(UInt64.self, "input.rip")
      let rawKind = try body.read(UInt8.self, "input.kind")
      guard let kind = InputKind(rawValue: rawKind & 0x7F) else {
        throw LogDecodingError("frame at byte \(position): unknown input kind \(rawKind)")
      }
      let registers = rawKind & 0x80 != 0 ? try body.read(UInt64.self, "input.registers") : nil
      let payload = try body.read(count: body.remaining, limit: maximumBody, "input.payload")
      record = .input(
        point: ExitPoint(sequence: sequence, instructionPointer: rip, registerHash: registers), kind: kind,
        payload: payload)
    case 3:
      record = .end(
        exits: try body.read(UInt64.self, "end.exits"), traceDigest: try body.read(UInt64.self, "end.trace"),
        memoryDigest: try body.read(UInt64.self, "end.memory"), reason: try body.readString("end.reason"))
    case 4:
      record = .progress(exits: try body.read(UInt64.self, "progress.exits"))
    default:
      throw LogDecodingError("frame at byte \(position): unknown record type \(type)")
    }
    try body.expectEnd("frame at byte \(position)")
    return record
  }
}

extension [UInt8] {
  /// Appends a u16-length-prefixed UTF-8 string (truncated to 64 KiB).
  mutating func appendString(_ text: String) {
    let bytes = Array(text.utf8.prefix(65535))
    append(littleEndian: UInt16(bytes.count))
    append(contentsOf: bytes)
  }
}

extension ByteReader {
  /// Reads a u16-length-prefixed UTF-8 string.
  mutating func readString(_ field: String) throws(LogDecodingError) -> String {
    let count = try read(UInt16.self, "\(field).length")
    return String(decoding: try read(count: Int(count), limit: 65535, field), as: UTF8.self)
  }
}
