import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// A blocking TCP client with timeouts, for talking to a guest.
final class TestClient {
  let fd: Int32

  init(port: Int, timeoutSeconds: Int = 10) throws {
    fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let status = withUnsafePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
        connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
      }
    }
    guard status == 0 else {
      close(fd)
      throw ClientError(description: "connect to port \(port): errno \(errno)")
    }
  }

  deinit { close(fd) }

  struct ClientError: Error, CustomStringConvertible {
    var description: String
  }

  func send(_ bytes: [UInt8]) throws {
    var offset = 0
    while offset < bytes.count {
      let sent = bytes.withUnsafeBytes {
        Glibc.send(fd, $0.baseAddress.map { $0 + offset }, bytes.count - offset, Int32(MSG_NOSIGNAL))
      }
      guard sent > 0 else { throw ClientError(description: "send: errno \(errno)") }
      offset += sent
    }
  }

  func send(_ text: String) throws { try send(Array(text.utf8)) }

  /// Reads exactly `count` bytes (or throws on timeout/EOF).
  func receive(count: Int) throws -> [UInt8] {
    var result: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65536)
    while result.count < count {
      let got = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, min($0.count, count - result.count), 0) }
      guard got > 0 else {
        throw ClientError(description: "receive: got \(result.count) of \(count) bytes (errno \(errno))")
      }
      result.append(contentsOf: buffer[..<got])
    }
    return result
  }

  /// Whether the server closed the connection (recv returns 0).
  func receivesEOF() -> Bool {
    var byte: UInt8 = 0
    return recv(fd, &byte, 1, 0) == 0
  }
}
