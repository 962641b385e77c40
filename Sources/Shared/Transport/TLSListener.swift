import CLockstepLinux
import Synchronization

#if canImport(Glibc)
  import Glibc
#endif

/// A TCP listener whose connections become ``TLSStream``s: each accepted
/// connection must complete the server handshake (and so present a valid
/// certificate from the cluster CA) within the handshake timeout, so a
/// silent or non-TLS peer holds ``accept(timeout:)`` for at most that long.
/// Handshakes run one at a time, on the thread that calls ``accept(timeout:)``.
public final class TLSListener: Sendable {
  /// The port listened on (the one the kernel chose when created with 0).
  public let port: Int
  /// The host listened on, as given.
  public let host: String
  /// How long a peer has to complete its handshake; accepted streams start
  /// with it as their read and write timeout.
  public let handshakeTimeout: Duration
  /// The peer roles accepted; a peer with a valid certificate for another
  /// role is refused after the handshake.
  public let allowedRoles: Set<NodeRole>

  private let context: TLSContext
  private let listener: FileDescriptorOwner
  private let closed = Atomic<Bool>(false)

  /// How long one wait for a connection lasts before ``close()`` is checked.
  static let pollSlice: Duration = .milliseconds(200)

  /// Listens on `host:port` (port 0: any free port, see ``port``) with a
  /// server `context`.
  public init(
    host: String, port: Int, context: TLSContext, handshakeTimeout: Duration = .seconds(5),
    allowedRoles: Set<NodeRole> = Set(NodeRole.allCases)
  ) throws(TLSError) {
    let address = HostPort(host: host, port: port).description
    guard context.side == .server else {
      throw TLSError(.configuration, "cannot listen on \(address) with a client TLS context")
    }
    var reason = CTextBuffer(capacity: 256)
    let fd = lslinux_listen_tcp(host, String(port), 128, &reason.bytes, reason.capacity)
    if fd == -2 { throw TLSError(.listen, "cannot listen on \(address): cannot resolve \(host): \(reason.text)") }
    if fd < 0 { throw TLSError(.listen, "cannot listen on \(address): \(CredentialFiles.reason(errno))") }
    listener = FileDescriptorOwner(taking: fd)
    self.port = Int(lslinux_local_port(fd))
    self.host = host
    self.context = context
    self.handshakeTimeout = handshakeTimeout
    self.allowedRoles = allowedRoles
  }

  /// Waits up to `timeout` (nil: until one comes or the listener is
  /// closed) for a connection and runs its handshake. Returns nil when the
  /// wait times out. Throws for a connection that fails its handshake or
  /// whose role is not allowed (``TLSError/Code/handshake``,
  /// ``TLSError/Code/timedOut``, ``TLSError/Code/peerNotAllowed``: log it and
  /// accept again), and ``TLSError/Code/closed`` once ``close()`` was called.
  public func accept(timeout: Duration? = nil) throws(TLSError) -> TLSStream? {
    let deadline = timeout.map { ClockReading.monotonicNanoseconds() + $0.wholeNanoseconds }
    let slice = Self.pollSlice.wholeNanoseconds
    var peer = CTextBuffer(capacity: 96)
    while true {
      guard !closed.load(ordering: .acquiring) else {
        throw TLSError(.closed, "the TLS listener on port \(port) is closed")
      }
      let now = ClockReading.monotonicNanoseconds()
      if let deadline, now >= deadline { return nil }
      let wait = deadline.map { min($0 - now, slice) } ?? slice
      let ready = lslinux_wait_readable(listener.rawValue, wait)
      if ready < 0 && errno != EINTR {
        throw TLSError(.listen, "waiting for connections on port \(port) failed: \(CredentialFiles.reason(errno))")
      }
      guard ready > 0, !closed.load(ordering: .acquiring) else { continue }
      let fd = lslinux_accept(listener.rawValue, &peer.bytes, peer.capacity)
      if fd < 0 {
        switch errno {
        case EAGAIN, EWOULDBLOCK, EINTR, ECONNABORTED, EPROTO, EPERM: continue
        default:
          throw TLSError(.listen, "accepting on port \(port) failed: \(CredentialFiles.reason(errno))")
        }
      }
      return try establish(fd, peerAddress: peer.text)
    }
  }

  private func establish(_ fd: Int32, peerAddress: String) throws(TLSError) -> TLSStream {
    guard TCPSocket.setBlocking(fd), lslinux_set_nodelay(fd) == 0 else {
      let reason = CredentialFiles.reason(errno)
      Glibc.close(fd)
      throw TLSError(.handshake, "cannot set up the connection from \(peerAddress): \(reason)")
    }
    let stream = try TLSStream.handshake(
      descriptor: fd, context: context, peerAddress: peerAddress, timeout: handshakeTimeout,
      ioTimeout: handshakeTimeout)
    guard let role = stream.peerRole, allowedRoles.contains(role) else {
      stream.close()
      let allowed = NodeRole.allCases.filter { allowedRoles.contains($0) }.map(\.rawValue).joined(separator: ", ")
      throw TLSError(
        .peerNotAllowed,
        "refused \(stream.peerDescription): its certificate's role is \(stream.peerRole?.rawValue ?? "none"); "
          + "only \(allowed) may connect here")
    }
    return stream
  }

  /// Whether ``close()`` was called.
  public var isClosed: Bool { closed.load(ordering: .acquiring) }

  /// Stops accepting: pending and later ``accept(timeout:)`` calls throw
  /// ``TLSError/Code/closed`` (within ``pollSlice``). The socket itself is
  /// closed when the listener goes away.
  public func close() {
    guard !closed.exchange(true, ordering: .acquiringAndReleasing) else { return }
    Glibc.shutdown(listener.rawValue, Int32(SHUT_RDWR))
  }
}
