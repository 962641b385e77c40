import CLockstepLinux

#if canImport(Glibc)
  import Glibc
#endif

/// The TCP side of TLS connections: connecting with a deadline, blocking
/// mode, TCP_NODELAY and socket timeouts.
enum TCPSocket {
  /// Connects to `host:port` (a name or a numeric IPv4/IPv6 address; every
  /// address it resolves to is tried in turn) within `timeout`. Returns a
  /// blocking, close-on-exec socket with TCP_NODELAY set.
  static func connect(host: String, port: Int, timeout: Duration) throws(TLSError) -> Int32 {
    let target = HostPort(host: host, port: port).description
    guard (1...65535).contains(port) else {
      throw TLSError(.connect, "cannot connect to \(target): invalid port")
    }
    let deadline = ClockReading.monotonicNanoseconds() + timeout.wholeNanoseconds
    var hints = addrinfo()
    hints.ai_family = AF_UNSPEC
    hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
    hints.ai_flags = AI_NUMERICSERV
    var results: UnsafeMutablePointer<addrinfo>?
    let status = getaddrinfo(host, String(port), &hints, &results)
    guard status == 0 else {
      let reason = gai_strerror(status).map { String(cString: $0) } ?? "error \(status)"
      throw TLSError(.connect, "cannot connect to \(target): cannot resolve \(host): \(reason)")
    }
    defer { freeaddrinfo(results) }
    var reason = "no address"
    var refused = false
    var cursor = results
    while let entry = cursor {
      cursor = entry.pointee.ai_next
      let flags = Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue)
      let fd = socket(entry.pointee.ai_family, entry.pointee.ai_socktype | flags, entry.pointee.ai_protocol)
      guard fd >= 0 else {
        reason = CredentialFiles.reason(errno)
        continue
      }
      if let failure = finishConnect(fd, entry.pointee.ai_addr, entry.pointee.ai_addrlen, deadline: deadline) {
        Glibc.close(fd)
        refused = failure == CredentialFiles.reason(ECONNREFUSED)
        reason = failure
        continue
      }
      guard setBlocking(fd), lslinux_set_nodelay(fd) == 0 else {
        reason = CredentialFiles.reason(errno)
        Glibc.close(fd)
        continue
      }
      return fd
    }
    let code: TLSError.Code = reason == "timed out" ? .timedOut : refused ? .refused : .connect
    throw TLSError(code, "cannot connect to \(target): \(reason)")
  }

  /// Connects the non-blocking `fd`; nil on success, else why not.
  private static func finishConnect(
    _ fd: Int32, _ address: UnsafeMutablePointer<sockaddr>?, _ length: socklen_t, deadline: UInt64
  ) -> String? {
    var attempts = 0
    while Glibc.connect(fd, address, length) != 0 {
      if errno == EINPROGRESS { break }
      attempts += 1
      if errno == EINTR && attempts < 64 { continue }
      return CredentialFiles.reason(errno)
    }
    while true {
      let now = ClockReading.monotonicNanoseconds()
      guard now < deadline else { return "timed out" }
      var wait = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
      let ready = poll(&wait, 1, Int32(min((deadline - now) / 1_000_000 + 1, 60_000)))
      if ready < 0 && errno == EINTR { continue }
      if ready < 0 { return CredentialFiles.reason(errno) }
      if ready == 0 { continue }
      var failure: Int32 = 0
      var size = socklen_t(MemoryLayout<Int32>.size)
      guard getsockopt(fd, SOL_SOCKET, SO_ERROR, &failure, &size) == 0 else { return CredentialFiles.reason(errno) }
      return failure == 0 ? nil : CredentialFiles.reason(failure)
    }
  }

  /// Clears O_NONBLOCK; false on failure.
  static func setBlocking(_ fd: Int32) -> Bool {
    let flags = fcntl(fd, F_GETFL)
    return flags >= 0 && fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) == 0
  }

  /// Sets SO_RCVTIMEO and SO_SNDTIMEO (nil: no timeout).
  static func setTimeouts(_ fd: Int32, _ timeout: Duration?) {
    let total = timeout?.wholeNanoseconds ?? 0
    var value = timeval(tv_sec: Int(total / 1_000_000_000), tv_usec: Int(total % 1_000_000_000 / 1000))
    if timeout != nil && total < 1000 { value.tv_usec = 1 }
    let size = socklen_t(MemoryLayout<timeval>.size)
    _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &value, size)
    _ = setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &value, size)
  }

  /// `duration` in whole milliseconds, at least 1.
  static func milliseconds(_ duration: Duration) -> Int64 {
    Int64(max(duration.wholeNanoseconds / 1_000_000, 1))
  }
}
