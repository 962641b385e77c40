import CLockstepLinux

#if canImport(Glibc)
  import Glibc
#endif

/// A non-blocking, close-on-exec UDP socket bound to a local address: what
/// heartbeats travel on.
public final class UDPSocket: Sendable {
  /// A resolved destination for ``send(_:to:)``.
  public struct Destination: Sendable, Equatable {
    /// The address as given.
    public let address: HostPort
    /// The `struct sockaddr` bytes.
    let storage: [UInt8]
  }

  let descriptor: FileDescriptorOwner
  /// The local port (the one picked when bound to port 0).
  public let port: Int

  /// Binds to `host:port` (port 0 picks a free one).
  public init(binding address: HostPort) throws(SystemError) {
    var error = CTextBuffer(capacity: 256)
    let fd = lslinux_udp_bind(address.host, String(address.port), &error.bytes, error.capacity)
    if fd == -2 {
      throw SystemError("resolve \(address) (\(error.text))", errno: EINVAL)
    }
    guard fd >= 0 else { throw SystemError("bind UDP \(address)", errno: errno) }
    descriptor = FileDescriptorOwner(taking: fd)
    let local = lslinux_local_port(fd)
    guard local > 0 else { throw SystemError("getsockname(UDP \(address))", errno: errno) }
    port = Int(local)
  }

  /// Resolves `address` for sending from this socket (same family).
  public func resolve(_ address: HostPort) throws(SystemError) -> Destination {
    var storage = [UInt8](repeating: 0, count: 128)
    var length: UInt32 = 0
    var error = CTextBuffer(capacity: 256)
    let status = storage.withUnsafeMutableBytes { buffer in
      lslinux_udp_resolve(
        descriptor.rawValue, address.host, String(address.port), buffer.baseAddress, buffer.count, &length,
        &error.bytes, error.capacity)
    }
    guard status == 0 else { throw SystemError("resolve \(address) (\(error.text))", errno: EINVAL) }
    return Destination(address: address, storage: Array(storage[0..<Int(length)]))
  }

  /// Sends one datagram without blocking.
  public func send(_ bytes: [UInt8], to destination: Destination) throws(SystemError) {
    let sent = bytes.withUnsafeBytes { buffer in
      destination.storage.withUnsafeBytes { address in
        lslinux_udp_sendto(
          descriptor.rawValue, buffer.baseAddress, buffer.count, address.baseAddress, UInt32(address.count))
      }
    }
    guard sent >= 0 else { throw SystemError("sendto(\(destination.address))", errno: errno) }
  }

  /// Receives one datagram if one is waiting (at most `capacity` bytes
  /// kept); nil when none is. Errors such as ECONNREFUSED (an ICMP answer to
  /// an earlier send) are thrown.
  public func receive(capacity: Int = 2048) throws(SystemError) -> [UInt8]? {
    var buffer = [UInt8](repeating: 0, count: capacity)
    let count = buffer.withUnsafeMutableBytes { lslinux_udp_recv(descriptor.rawValue, $0.baseAddress, $0.count) }
    if count < 0 {
      let error = errno
      if error == EAGAIN || error == EWOULDBLOCK || error == EINTR { return nil }
      throw SystemError("recv(UDP port \(port))", errno: error)
    }
    return Array(buffer[0..<count])
  }

  /// Waits until a datagram is waiting or `nanoseconds` pass; true when
  /// one is.
  public func waitReadable(nanoseconds: UInt64) -> Bool {
    lslinux_wait_readable(descriptor.rawValue, nanoseconds) == 1
  }
}
