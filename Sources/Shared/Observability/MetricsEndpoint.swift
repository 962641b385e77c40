import CLockstepLinux
import Logging
import Synchronization

#if canImport(Glibc)
  import Glibc
#endif

/// Serves `GET /metrics` in the Prometheus text format over plain HTTP/1.1
/// (`--metrics HOST:PORT` of every binary; docs/metrics.md).
///
/// Plain HTTP, like every Prometheus exporter: bind it to a management
/// address (it reveals counters, never data or keys, and accepts nothing
/// but `GET`). One thread, `metrics`, answers one request per connection
/// (requests are read for at most a second and 8 KiB) and, between
/// requests, calls `sample` once a second so rates cover steady windows.
public final class MetricsEndpoint: Sendable {
  /// The port listened on (the kernel's choice when created with 0).
  public let port: Int
  private let listener: FileDescriptorOwner
  private let closed = Atomic<Bool>(false)
  private let thread = Mutex<NamedThread?>(nil)
  private let render: @Sendable () -> [UInt8]
  private let sample: @Sendable () -> Void
  private let logger: Logger

  /// The longest request read.
  static let requestLimit = 8192

  /// Listens on `address`; ``start()`` serves.
  public init(
    address: HostPort, logger: Logger, sample: @escaping @Sendable () -> Void = {},
    render: @escaping @Sendable () -> [UInt8]
  ) throws(MetricsEndpointError) {
    var reason = CTextBuffer(capacity: 256)
    let fd = lslinux_listen_tcp(address.host, String(address.port), 16, &reason.bytes, reason.capacity)
    if fd == -2 {
      throw MetricsEndpointError("cannot serve metrics on \(address): cannot resolve \(address.host): \(reason.text)")
    }
    if fd < 0 {
      throw MetricsEndpointError(
        "cannot serve metrics on \(address): \(CredentialFiles.reason(errno)) (is another process using the port?)")
    }
    listener = FileDescriptorOwner(taking: fd)
    port = Int(lslinux_local_port(fd))
    self.render = render
    self.sample = sample
    self.logger = logger
  }

  /// Starts the serving thread.
  public func start() throws(SystemError) {
    let started = try NamedThread(name: "metrics") { [self] in serve() }
    thread.withLock { $0 = started }
  }

  /// Stops serving (within a second) and waits for the thread.
  public func close() {
    guard !closed.exchange(true, ordering: .acquiringAndReleasing) else { return }
    Glibc.shutdown(listener.rawValue, Int32(SHUT_RDWR))
    thread.withLock { $0 }?.join()
  }

  private func serve() {
    // The stop signals belong to the process's signal thread
    // (SignalStopper), whenever this thread starts.
    var signals = sigset_t()
    sigemptyset(&signals)
    sigaddset(&signals, SIGINT)
    sigaddset(&signals, SIGTERM)
    pthread_sigmask(SIG_BLOCK, &signals, nil)
    var peer = CTextBuffer(capacity: 96)
    var lastSample: UInt64 = 0
    while !closed.load(ordering: .acquiring) {
      let now = ClockReading.monotonicNanoseconds()
      if now - lastSample >= 1_000_000_000 {
        sample()
        lastSample = now
      }
      let ready = lslinux_wait_readable(listener.rawValue, 250_000_000)
      guard ready > 0, !closed.load(ordering: .acquiring) else { continue }
      let fd = lslinux_accept(listener.rawValue, &peer.bytes, peer.capacity)
      guard fd >= 0 else { continue }
      let connection = FileDescriptorOwner(taking: fd)
      _ = TCPSocket.setBlocking(fd)
      TCPSocket.setTimeouts(fd, .seconds(1))
      answer(connection, peer: peer.text)
    }
  }

  private func answer(_ connection: borrowing FileDescriptorOwner, peer: String) {
    var request: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 2048)
    while request.count < Self.requestLimit && !Self.headerComplete(request) {
      let count = chunk.withUnsafeMutableBytes { recv(connection.rawValue, $0.baseAddress, $0.count, 0) }
      if count < 0 && errno == EINTR { continue }
      guard count > 0 else { return }
      request += chunk[..<count]
    }
    let line = request.prefix { $0 != 0x0D && $0 != 0x0A }
    let parts = String(decoding: line, as: UTF8.self).split(separator: " ")
    let response: [UInt8]
    if parts.count == 3, parts[0] == "GET", parts[1] == "/metrics" || parts[1].hasPrefix("/metrics?") {
      response = Self.response(status: "200 OK", type: "text/plain; version=0.0.4; charset=utf-8", body: render())
    } else if parts.count == 3, parts[0] == "GET" {
      response = Self.response(
        status: "404 Not Found", type: "text/plain", body: Array("only /metrics is served here\n".utf8))
    } else {
      logger.debug("metrics: a malformed request from \(peer)")
      response = Self.response(status: "400 Bad Request", type: "text/plain", body: Array("GET /metrics\n".utf8))
    }
    var sent = 0
    while sent < response.count {
      let count = response[sent...].withUnsafeBytes {
        send(connection.rawValue, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL))
      }
      if count < 0 && errno == EINTR { continue }
      guard count > 0 else { return }
      sent += count
    }
  }

  static func headerComplete(_ request: [UInt8]) -> Bool {
    let end: [UInt8] = [0x0D, 0x0A, 0x0D, 0x0A]
    guard request.count >= 4 else { return false }
    return request.indices.dropLast(3).contains { request[$0..<($0 + 4)].elementsEqual(end) }
      || request.contains(0x0A) && request.count >= 2 && request.suffix(2) == [0x0A, 0x0A]
  }

  static func response(status: String, type: String, body: [UInt8]) -> [UInt8] {
    let head =
      "HTTP/1.1 \(status)\r\nContent-Type: \(type)\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n"
    return Array(head.utf8) + body
  }
}
