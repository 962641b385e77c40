#if canImport(Glibc)
  import Glibc
#endif

/// Reads framed log records from a file, a chunk at a time.
public final class LogFileReader {
  let path: String
  let descriptor: FileDescriptorOwner
  private var buffer: [UInt8] = []
  private var start = 0
  private var position: UInt64 = 0
  private var atEnd = false

  /// Opens `path`.
  public init(path: String) throws(SystemError) {
    self.path = path
    descriptor = try FileDescriptorOwner(opening: path, flags: O_RDONLY)
  }

  /// The next record, or nil at the end of the file. A file that ends in
  /// the middle of a frame (a recorder killed while writing) ends there.
  public func next() throws -> LogRecord? {
    while true {
      if let (record, size) = try LogFrame.decode(buffer[start...], at: position) {
        start += size
        position += UInt64(size)
        return record
      }
      if atEnd { return nil }
      try fill()
    }
  }

  private func fill() throws {
    if start > 0 {
      buffer.removeFirst(start)
      start = 0
    }
    var chunk = [UInt8](repeating: 0, count: 1 << 20)
    let fd = descriptor.rawValue
    let got = try chunk.withUnsafeMutableBytes { raw in
      try systemCall("read(\(path))") { read(fd, raw.baseAddress, raw.count) }
    }
    if got == 0 { atEnd = true }
    buffer.append(contentsOf: chunk[..<got])
  }
}
