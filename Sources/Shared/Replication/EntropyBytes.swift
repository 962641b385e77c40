import CLockstepKVM
import CLockstepLinux

#if canImport(Glibc)
  import Glibc
#endif

/// The result of LS_OP_ENTROPY: random bytes.
public struct EntropyBytes: InputValue {
  /// The bytes.
  public var bytes: [UInt8]

  /// Wraps bytes.
  public init(_ bytes: [UInt8]) {
    self.bytes = bytes
  }

  /// `count` bytes from the kernel's CSPRNG.
  public static func random(count: Int) throws(SystemError) -> EntropyBytes {
    var bytes = [UInt8](repeating: 0, count: count)
    var filled = 0
    while filled < count {
      let got = bytes.withUnsafeMutableBytes { buffer in
        lslinux_getrandom(buffer.baseAddress.map { $0 + filled }, count - filled)
      }
      if got < 0 {
        let error = errno
        if error == EINTR { continue }
        throw SystemError("getrandom(\(count))", errno: error)
      }
      filled += got
    }
    return EntropyBytes(bytes)
  }

  public func encode(into buffer: inout [UInt8]) {
    buffer.append(littleEndian: UInt32(bytes.count))
    buffer.append(contentsOf: bytes)
  }

  public static func decode(from reader: inout ByteReader) throws(LogDecodingError) -> EntropyBytes {
    let count = try reader.read(UInt32.self, "entropy.length")
    return EntropyBytes(try reader.read(count: Int(count), limit: Int(LS_ENTROPY_MAX), "entropy.bytes"))
  }
}
