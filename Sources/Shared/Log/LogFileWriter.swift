#if canImport(Glibc)
  import Glibc
#endif

/// Appends framed log records to a file, buffered; ``finish()`` writes
/// the rest and fsyncs.
public final class LogFileWriter {
  let path: String
  let descriptor: FileDescriptorOwner
  private var buffer: [UInt8] = []
  /// Bytes written so far (including buffered).
  public private(set) var bytesWritten: UInt64 = 0
  static let bufferLimit = 256 << 10

  /// Creates (or truncates) `path`.
  public init(path: String) throws(SystemError) {
    self.path = path
    descriptor = try FileDescriptorOwner(opening: path, flags: O_WRONLY | O_CREAT | O_TRUNC, mode: 0o644)
  }

  /// Appends a record.
  public func append(_ record: LogRecord) throws {
    let before = buffer.count
    LogFrame.encode(record, into: &buffer)
    bytesWritten += UInt64(buffer.count - before)
    if buffer.count >= Self.bufferLimit { try writeBuffer() }
  }

  /// Writes everything buffered and makes it durable.
  public func finish() throws {
    try writeBuffer()
    let fd = descriptor.rawValue
    _ = try systemCall("fsync(\(path))") { fsync(fd) }
  }

  private func writeBuffer() throws {
    var offset = 0
    let fd = descriptor.rawValue
    while offset < buffer.count {
      let wrote = try buffer.withUnsafeBytes { raw in
        try systemCall("write(\(path))") { write(fd, raw.baseAddress.map { $0 + offset }, raw.count - offset) }
      }
      offset += wrote
    }
    buffer.removeAll(keepingCapacity: true)
  }
}
