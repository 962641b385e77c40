import Logging
import Synchronization

#if canImport(Glibc)
  import Glibc
#endif

/// The arbiter's network side: a mutual TLS listener that admits VMMs and
/// operators, and a thread per connection that answers requests from an
/// ``ArbiterStore`` (docs/arbiter.md).
///
/// Only a VMM may test-and-set, and only in its own name (the node in the
/// request must be the name in its certificate); an operator may query.
/// A connection carries any number of requests, one answer each; it is
/// closed when it stays silent for ``idleTimeout``, sends a malformed
/// frame (after an error answer), or when the server closes. At most
/// ``maximumConnections`` are served at once; more are closed at once.
public final class ArbiterServer: Sendable {
  /// The decisions.
  public let store: ArbiterStore
  /// The port listened on (the kernel's choice when created with 0).
  public var port: Int { listener.port }
  /// How long a connection may stay silent between requests.
  public let idleTimeout: Duration
  /// How many connections are served at once.
  public let maximumConnections: Int

  private let listener: TLSListener
  private let logger: Logger
  private let acceptThread = Mutex<NamedThread?>(nil)
  private let connections = Mutex<[Int: TLSStream]>([:])
  private let nextConnection = Atomic<Int>(0)
  private let closed = Atomic<Bool>(false)
  private let counters = Mutex(ArbiterCounters())
  /// Refused connections (TLS, by kind) and refused requests (`operator`:
  /// an operator's test-and-set; `impersonation`: a VMM in another's name),
  /// each kind logged at most once a minute.
  public let refusals: RefusalLog

  /// Listens on `host:port` with the arbiter's `credentials`, answering
  /// from `store`. Call ``start()`` to serve.
  public init(
    host: String, port: Int, credentials: NodeCredentials, store: ArbiterStore, logger: Logger,
    idleTimeout: Duration = .seconds(60), handshakeTimeout: Duration = .seconds(5), maximumConnections: Int = 64
  ) throws(TLSError) {
    let context = try TLSContext(credentials: credentials, side: .server)
    listener = try TLSListener(
      host: host, port: port, context: context, handshakeTimeout: handshakeTimeout, allowedRoles: [.vmm, .operator])
    self.store = store
    self.logger = logger
    refusals = RefusalLog(logger: logger)
    self.idleTimeout = idleTimeout
    self.maximumConnections = maximumConnections
  }

  /// Starts accepting connections on a thread of its own.
  public func start() throws(SystemError) {
    let thread = try NamedThread(name: "arbiter-accept") { [self] in acceptLoop() }
    acceptThread.withLock { $0 = thread }
  }

  /// Stops accepting, closes every connection, and waits (up to a few
  /// seconds) for their threads to finish. Decisions already made are on
  /// disk; a request being answered either completes or is cut off.
  public func close() {
    guard !closed.exchange(true, ordering: .acquiringAndReleasing) else { return }
    listener.close()
    acceptThread.withLock { $0 }?.join()
    let open = connections.withLock { Array($0.values) }
    for stream in open { stream.close() }
    let deadline = ClockReading.monotonicNanoseconds() + 5_000_000_000
    while connections.withLock({ !$0.isEmpty }) && ClockReading.monotonicNanoseconds() < deadline {
      usleep(10_000)
    }
  }

  /// How many connections are being served.
  public var connectionCount: Int { connections.withLock { $0.count } }

  /// What the server has done since it started.
  public var counted: ArbiterCounters { counters.withLock { $0 } }

  private func count(_ update: (inout ArbiterCounters) -> Void) {
    counters.withLock { update(&$0) }
  }

  private func acceptLoop() {
    while !closed.load(ordering: .acquiring) {
      let stream: TLSStream
      do {
        guard let accepted = try listener.accept() else { continue }
        stream = accepted
      } catch {
        if error.code == .closed { return }
        count { $0.refusedConnections += 1 }
        refusals.record(RefusalLog.kind(of: error), "arbiter: connection refused: \(error)")
        continue
      }
      let id = nextConnection.wrappingAdd(1, ordering: .relaxed).newValue
      count { $0.connections += 1 }
      let admitted = connections.withLock { (open) -> Bool in
        guard open.count < maximumConnections, !closed.load(ordering: .acquiring) else { return false }
        open[id] = stream
        return true
      }
      guard admitted else {
        count { $0.busy += 1 }
        logger.warning("arbiter: too many connections (\(maximumConnections)); closing \(stream.peerDescription)")
        try? stream.setTimeout(.seconds(1))
        try? stream.write(ArbiterMessage.error(reason: "the arbiter is busy: too many connections").encoded)
        stream.close()
        continue
      }
      do {
        // Connection threads end on their own (close() waits for the
        // connection table to empty): nobody joins them.
        try NamedThread(name: "arbiter-conn") { [self] in
          serve(stream)
          stream.close()
          _ = connections.withLock { $0.removeValue(forKey: id) }
        }.detach()
      } catch {
        logger.error("arbiter: cannot start a thread for \(stream.peerDescription): \(error)")
        stream.close()
        _ = connections.withLock { $0.removeValue(forKey: id) }
      }
    }
  }

  /// Answers requests on `stream` until it closes, stays silent too long,
  /// or breaks the protocol.
  private func serve(_ stream: TLSStream) {
    let peer = stream.peerDescription
    logger.debug("arbiter: \(peer) connected (role \(stream.peerRole?.rawValue ?? "none"))")
    do {
      try stream.setTimeout(idleTimeout)
    } catch {
      return
    }
    var buffer: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 4096)
    while !closed.load(ordering: .acquiring) {
      let decoded: (message: ArbiterMessage, size: Int)?
      do {
        decoded = try ArbiterMessage.decode(buffer[...])
      } catch {
        count { $0.malformed += 1 }
        logger.warning("arbiter: malformed request from \(peer): \(error.reason); closing the connection")
        try? stream.write(ArbiterMessage.error(reason: "malformed request: \(error.reason)").encoded)
        return
      }
      if let (request, size) = decoded {
        buffer.removeFirst(size)
        let answer = self.answer(request, from: stream)
        do {
          try stream.write(answer.encoded)
        } catch {
          logger.warning("arbiter: cannot answer \(peer): \(error)")
          return
        }
        continue
      }
      do {
        let got = try stream.read(into: &chunk)
        if got == 0 {
          if !buffer.isEmpty { logger.warning("arbiter: \(peer) closed the connection inside a request") }
          return
        }
        buffer.append(contentsOf: chunk[..<got])
      } catch {
        if error.code == .timedOut {
          logger.debug("arbiter: \(peer) silent for \(idleTimeout); closing the connection")
        } else if !closed.load(ordering: .acquiring) {
          logger.debug("arbiter: connection with \(peer) ended: \(error)")
        }
        return
      }
    }
  }

  /// The answer to `request` from the peer of `stream`, counted.
  func answer(_ request: ArbiterMessage, from stream: TLSStream) -> ArbiterMessage {
    let reply = decide(request, from: stream)
    count { counters in
      switch (request, reply) {
      case (_, .error): counters.refusedRequests += 1
      case (.query, _): counters.queries += 1
      case (.testAndSet, .granted): counters.granted += 1
      case (.testAndSet, _): counters.lost += 1
      default: break
      }
    }
    return reply
  }

  private func decide(_ request: ArbiterMessage, from stream: TLSStream) -> ArbiterMessage {
    let peer = stream.peerDescription
    switch request {
    case .query(let vm):
      if let problem = ArbiterRecord.problem(vm: vm) { return .error(reason: problem) }
      let record = store.record(vm: vm)
      logger.debug("arbiter: \(peer) queried \(record)")
      return .current(record)
    case .testAndSet(let vm, let expectedGeneration, let node, let serviceAddress, let replicationAddress):
      guard stream.peerRole == .vmm else {
        refusals.record("operator", "arbiter: refused a test-and-set of \(vm) from \(peer): not a VMM")
        return .error(
          reason:
            "only a VMM may test-and-set: '\(stream.peerName)' has a \(stream.peerRole?.rawValue ?? "roleless") "
            + "certificate (an operator may only query)")
      }
      guard node == stream.peerName else {
        refusals.record(
          "impersonation", "arbiter: refused a test-and-set of \(vm) from \(peer) in the name of '\(node)'")
        return .error(
          reason: "a VMM may test-and-set only in its own name: the request names '\(node)', "
            + "the certificate '\(stream.peerName)'")
      }
      if let problem = ArbiterRecord.problem(vm: vm) { return .error(reason: problem) }
      for (label, address) in [("service", serviceAddress), ("replication", replicationAddress)]
      where address.utf8.count > ArbiterRecord.maximumAddressLength {
        return .error(reason: "the \(label) address is longer than \(ArbiterRecord.maximumAddressLength) bytes")
      }
      do {
        switch try store.testAndSet(
          vm: vm, expectedGeneration: expectedGeneration, node: node, serviceAddress: serviceAddress,
          replicationAddress: replicationAddress)
        {
        case .granted(let record):
          logger.notice("arbiter: granted \(record) to \(peer) (it expected generation \(expectedGeneration))")
          return .granted(record)
        case .current(let record):
          if record.holder == node && record.generation == expectedGeneration &+ 1 {
            // A retry (or a request left on an abandoned connection) of a
            // win already answered: the asker holds exactly that generation.
            logger.info(
              "arbiter: \(peer) asked again for \(vm) generation \(record.generation), which it already holds")
          } else {
            logger.notice("arbiter: \(peer) lost \(vm): it expected generation \(expectedGeneration); \(record)")
          }
          return .current(record)
        }
      } catch {
        logger.error("arbiter: test-and-set of \(vm) from \(peer) failed: \(error)")
        return .error(reason: "the arbiter cannot record the decision: \(error.message)")
      }
    case .granted, .current, .error:
      return .error(reason: "'\(request.name)' is an answer, not a request")
    }
  }
}
