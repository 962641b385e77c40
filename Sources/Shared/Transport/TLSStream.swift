import CLockstepSSL
import Synchronization

#if canImport(Glibc)
  import Glibc
#endif

/// A mutual TLS 1.3 connection over a blocking TCP socket (TCP_NODELAY),
/// whose peer proved a certificate from the cluster CA.
///
/// The stream owns its socket and closes it exactly once (``close()`` or
/// when the stream goes away). Reads and writes block for at most the
/// stream's timeout (``setTimeout(_:)``; it starts as the connect or
/// handshake timeout). Operations are serialized: OpenSSL does not allow
/// one connection to read and write at the same time, so a thread that
/// writes while another is blocked in a read waits for that read. A thread
/// that must both read and write should write, then wait with
/// ``waitUntilReadable(timeout:)`` (or poll ``socketDescriptor`` after
/// checking ``hasBufferedInput``), then read.
/// ``close()`` may be called from any thread and wakes a blocked reader.
///
/// In TLS 1.3 a client finishes its handshake before the server has
/// checked the client's certificate, so a client the server refuses sees
/// the refusal at its first read.
public final class TLSStream: Sendable {
  /// The peer's name (its certificate's commonName).
  public let peerName: String
  /// The peer's role (from its certificate), nil when its certificate
  /// names none.
  public let peerRole: NodeRole?
  /// The peer's address, `HOST:PORT`.
  public let peerAddress: String

  /// The connection: what only one thread at a time may touch. Sendable
  /// because the OpenSSL connection is used only under the stream's lock.
  struct Connection: @unchecked Sendable {
    var ssl: UnsafeMutableRawPointer?
    let descriptor: Int32
    /// Set after a failed write or I/O error: nothing more goes through.
    var failure: String?

    /// Frees the TLS connection (after sending close_notify if `graceful`)
    /// and closes the socket; the only place the socket is closed.
    mutating func release(graceful: Bool) {
      guard let ssl else { return }
      if graceful && failure == nil { lsssl_shutdown(ssl) }
      lsssl_connection_free(ssl)
      Glibc.close(descriptor)
      self.ssl = nil
    }
  }

  private let connection: Mutex<Connection>
  private let descriptor: Int32
  private let closing = Atomic<Bool>(false)

  private init(
    ssl: UnsafeMutableRawPointer, descriptor: Int32, peerName: String, peerRole: NodeRole?, peerAddress: String
  ) {
    connection = Mutex(Connection(ssl: ssl, descriptor: descriptor))
    self.descriptor = descriptor
    self.peerName = peerName
    self.peerRole = peerRole
    self.peerAddress = peerAddress
  }

  deinit {
    let graceful = !closing.load(ordering: .acquiring)
    connection.withLock { $0.release(graceful: graceful) }
  }

  /// Who the peer is, for messages: `NAME at HOST:PORT`.
  public var peerDescription: String { "\(peerName) at \(peerAddress)" }

  /// Connects to `host:port` and runs the client handshake, all within
  /// `timeout`, which then bounds every read and write too. With `role`,
  /// refuses a server whose certificate names another role.
  public static func connect(
    host: String, port: Int, context: TLSContext, timeout: Duration = .seconds(10), expecting role: NodeRole? = nil
  ) throws(TLSError) -> TLSStream {
    let address = HostPort(host: host, port: port).description
    guard context.side == .client else {
      throw TLSError(.configuration, "cannot connect to \(address) with a server TLS context")
    }
    let start = ClockReading.monotonicNanoseconds()
    let fd = try TCPSocket.connect(host: host, port: port, timeout: timeout)
    let elapsed = Duration.nanoseconds(Int64(ClockReading.monotonicNanoseconds() - start))
    let stream = try handshake(
      descriptor: fd, context: context, peerAddress: address, timeout: timeout - elapsed, ioTimeout: timeout)
    if let role, stream.peerRole != role {
      stream.close()
      throw TLSError(
        .peerNotAllowed,
        "\(address) presented the certificate of '\(stream.peerName)' (role \(stream.peerRole?.rawValue ?? "none")), "
          + "not that of a \(role)")
    }
    return stream
  }

  /// Runs the handshake on the connected socket `fd` (taken: closed on
  /// failure) within `timeout`; the stream's reads and writes are then
  /// bounded by `ioTimeout`.
  static func handshake(
    descriptor fd: Int32, context: TLSContext, peerAddress: String, timeout: Duration, ioTimeout: Duration?
  ) throws(TLSError) -> TLSStream {
    var error = CTextBuffer(capacity: 1024)
    guard
      let ssl = lsssl_connection_new(
        context.handle, fd, context.side == .server ? 1 : 0, &error.bytes, error.capacity)
    else {
      Glibc.close(fd)
      throw TLSError(.configuration, "cannot start TLS with \(peerAddress): \(error.text)")
    }
    let status = lsssl_handshake(ssl, fd, TCPSocket.milliseconds(timeout), &error.bytes, error.capacity)
    guard status == lsssl_ok else {
      lsssl_connection_free(ssl)
      Glibc.close(fd)
      if status == lsssl_timed_out {
        throw TLSError(.timedOut, "TLS handshake with \(peerAddress) timed out: \(error.text)")
      }
      throw TLSError(.handshake, "TLS handshake with \(peerAddress) failed: \(error.text)")
    }
    var name = CTextBuffer(capacity: 256)
    var unit = CTextBuffer(capacity: 256)
    guard lsssl_peer_identity(ssl, &name.bytes, name.capacity, &unit.bytes, unit.capacity) == 1 else {
      lsssl_connection_free(ssl)
      Glibc.close(fd)
      throw TLSError(.handshake, "TLS handshake with \(peerAddress) failed: the peer presented no certificate")
    }
    TCPSocket.setTimeouts(fd, ioTimeout)
    return TLSStream(
      ssl: ssl, descriptor: fd, peerName: name.text, peerRole: NodeRole(organizationalUnit: unit.text),
      peerAddress: peerAddress)
  }

  /// Whether ``close()`` was called.
  public var isClosed: Bool { closing.load(ordering: .acquiring) }

  /// The socket, only to wait until it is readable together with other
  /// descriptors (poll, epoll): never read, write or close it. Valid until
  /// ``close()``. Check ``hasBufferedInput`` first: data already decrypted
  /// inside the connection does not make the socket readable.
  public var socketDescriptor: Int32 { descriptor }

  /// Whether decrypted data is waiting inside the connection, so a read
  /// returns at once without touching the socket.
  public var hasBufferedInput: Bool {
    connection.withLock { connection in
      guard let ssl = connection.ssl, connection.failure == nil else { return false }
      return lsssl_pending(ssl) > 0
    }
  }

  /// Reads what is available, at most `buffer.count` bytes, blocking until
  /// something is; returns 0 when the peer closed the stream cleanly.
  /// Throws ``TLSError/Code/timedOut`` when nothing came within the
  /// stream's timeout (the stream stays usable).
  public func read(into buffer: UnsafeMutableRawBufferPointer) throws(TLSError) -> Int {
    guard let base = buffer.baseAddress, buffer.count > 0 else { return 0 }
    return try withConnection("read from") { (connection, ssl) throws(TLSError) -> Int in
      var count = 0
      var error = CTextBuffer(capacity: 1024)
      let status = lsssl_read(ssl, base, buffer.count, &count, &error.bytes, error.capacity)
      switch status {
      case lsssl_ok:
        return count
      case lsssl_closed:
        return 0
      case lsssl_timed_out:
        throw TLSError(.timedOut, "TLS read from \(peerDescription) timed out")
      default:
        throw fail(&connection, .io, "TLS read from \(peerDescription) failed: \(error.text)")
      }
    }
  }

  /// Reads into `buffer` from its start, at most `buffer.count` bytes;
  /// returns how many (0: the peer closed the stream).
  public func read(into buffer: inout [UInt8]) throws(TLSError) -> Int {
    try buffer.withUnsafeMutableBytes { raw in Result { () throws(TLSError) in try read(into: raw) } }.get()
  }

  /// Reads exactly `count` bytes; throws ``TLSError/Code/closed`` if the
  /// peer closes the stream first.
  public func read(exactly count: Int) throws(TLSError) -> [UInt8] {
    var bytes = [UInt8](repeating: 0, count: count)
    var filled = 0
    while filled < count {
      let got = try bytes.withUnsafeMutableBytes { raw in
        Result { () throws(TLSError) in try read(into: UnsafeMutableRawBufferPointer(rebasing: raw[filled...])) }
      }.get()
      guard got > 0 else {
        throw TLSError(.closed, "\(peerDescription) closed the TLS stream after \(filled) of \(count) bytes")
      }
      filled += got
    }
    return bytes
  }

  /// Writes all of `bytes`. A failure or timeout closes the stream (a TLS
  /// record may have been cut in the middle).
  public func write(_ bytes: UnsafeRawBufferPointer) throws(TLSError) {
    guard let base = bytes.baseAddress, bytes.count > 0 else { return }
    try withConnection("write to") { (connection, ssl) throws(TLSError) in
      var offset = 0
      while offset < bytes.count {
        var written = 0
        var error = CTextBuffer(capacity: 1024)
        let status = lsssl_write(
          ssl, base + offset, bytes.count - offset, &written, &error.bytes, error.capacity)
        switch status {
        case lsssl_ok:
          offset += written
        case lsssl_timed_out:
          throw fail(
            &connection, .timedOut,
            "TLS write to \(peerDescription) timed out after \(offset) of \(bytes.count) bytes (the peer is not reading)"
          )
        default:
          throw fail(&connection, .io, "TLS write to \(peerDescription) failed: \(error.text)")
        }
      }
    }
  }

  /// Writes all of `bytes`.
  public func write(_ bytes: [UInt8]) throws(TLSError) {
    try bytes.withUnsafeBytes { raw in Result { () throws(TLSError) in try write(raw) } }.get()
  }

  /// Whether a read would find data within `timeout` (data already
  /// decrypted, or bytes on the socket; those may turn out to be TLS
  /// housekeeping, so a read may still time out).
  public func waitUntilReadable(timeout: Duration) throws(TLSError) -> Bool {
    try withConnection("wait for") { (connection, ssl) throws(TLSError) -> Bool in
      if lsssl_pending(ssl) > 0 { return true }
      let deadline = ClockReading.monotonicNanoseconds() + timeout.wholeNanoseconds
      while true {
        let now = ClockReading.monotonicNanoseconds()
        guard now < deadline else { return false }
        var wait = pollfd(fd: connection.descriptor, events: Int16(POLLIN), revents: 0)
        let ready = poll(&wait, 1, Int32(min((deadline - now + 999_999) / 1_000_000, 60_000)))
        if ready > 0 { return true }
        if ready < 0 && errno != EINTR {
          throw fail(&connection, .io, "waiting for \(peerDescription) failed: \(CredentialFiles.reason(errno))")
        }
      }
    }
  }

  /// Sets how long a read or write may block (nil: forever).
  public func setTimeout(_ timeout: Duration?) throws(TLSError) {
    try withConnection("configure") { (connection, _) throws(TLSError) in
      TCPSocket.setTimeouts(connection.descriptor, timeout)
    }
  }

  /// Sends close_notify and closes the socket; later operations throw
  /// ``TLSError/Code/closed``. Safe from any thread, and more than once: a
  /// thread blocked in a read on this stream is woken (its read fails).
  public func close() {
    guard !closing.exchange(true, ordering: .acquiringAndReleasing) else { return }
    let released: Void? = connection.withLockIfAvailable { $0.release(graceful: true) }
    if released == nil {
      // Another thread is inside a read or write: wake it, then take over.
      // The socket is still open: only this call (the one closer) closes it.
      Glibc.shutdown(descriptor, Int32(SHUT_RDWR))
      connection.withLock { $0.release(graceful: false) }
    }
  }

  /// Runs `body` with the open connection, or throws ``TLSError/Code/closed``.
  private func withConnection<Result>(
    _ what: String, _ body: (inout Connection, UnsafeMutableRawPointer) throws(TLSError) -> Result
  ) throws(TLSError) -> Result {
    try connection.withLock { (connection) throws(TLSError) -> Result in
      guard !closing.load(ordering: .acquiring), let ssl = connection.ssl else {
        throw TLSError(.closed, "cannot \(what) \(peerDescription): the TLS stream is closed")
      }
      if let failure = connection.failure {
        throw TLSError(.closed, "cannot \(what) \(peerDescription): the TLS stream failed earlier (\(failure))")
      }
      return try body(&connection, ssl)
    }
  }

  /// Marks the connection failed (nothing more goes through; the socket
  /// stays open until ``close()``) and returns the error to throw.
  private func fail(_ connection: inout Connection, _ code: TLSError.Code, _ message: String) -> TLSError {
    connection.failure = message
    Glibc.shutdown(connection.descriptor, Int32(SHUT_RDWR))
    return TLSError(code, message)
  }
}
