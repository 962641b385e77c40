import CLockstepLinux
import Synchronization

#if canImport(Glibc)
  import Glibc
#endif

/// The VM's service address: a TCP listener whose client connections
/// become guest connection ids. A reactor thread (epoll) accepts, reads and
/// writes; the vCPU only exchanges events with it through a lock-protected
/// inbox and outbox, so it never blocks on a socket.
///
/// Bounded: a connection whose unread input passes ``inboundLimit`` is not
/// read until the guest catches up; one whose unsent output passes
/// ``outboundLimit`` (a client that does not read) is dropped, which the
/// guest sees as a close.
public final class NetworkService: NetworkPort {
  /// Unread bytes per connection before the reactor stops reading it.
  public static let inboundLimit = 1 << 20
  /// Unsent bytes per connection before it is dropped.
  public static let outboundLimit = 64 << 20
  /// Bytes read from a socket at a time (one data event at most).
  static let readChunk = 64 << 10

  /// What the vCPU and the reactor share.
  struct Shared: ~Copyable {
    var inbox: [InboundEvent] = []
    var inboxStart = 0
    var unread: [UInt32: Int] = [:]
    var paused: Set<UInt32> = []
    var resume: [UInt32] = []
    var outbox: [(UInt32, [UInt8]?)] = []
    var stopping = false
    /// The first id the reactor gives a new connection.
    var firstConnection: UInt32 = 1
  }

  private let shared = Mutex(Shared())
  private let epoll: FileDescriptorOwner
  private let listener: FileDescriptorOwner
  private let reactorWakeup: Wakeup
  private let machineWakeup: Wakeup
  private let thread = Mutex<NamedThread?>(nil)
  /// The bound port (useful with port 0).
  public let port: Int

  static let listenerToken: UInt64 = 0
  static let wakeupToken: UInt64 = 1

  /// Listens on `host:port` and wakes `machineWakeup` when input arrives.
  public init(host: String, port: Int, machineWakeup: Wakeup) throws(SystemError) {
    var reason = [CChar](repeating: 0, count: 256)
    let fd = lslinux_listen_tcp(host, String(port), 512, &reason, reason.count)
    if fd == -2 {
      throw SystemError(
        "resolve \(host): \(String(decoding: reason.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))",
        errno: EINVAL)
    }
    if fd < 0 { throw SystemError("listen(\(host):\(port))", errno: errno) }
    listener = FileDescriptorOwner(taking: fd)
    self.port = Int(lslinux_local_port(fd))
    epoll = FileDescriptorOwner(taking: try systemCall("epoll_create") { lslinux_epoll_create() })
    reactorWakeup = try Wakeup()
    self.machineWakeup = machineWakeup
    let epollFD = epoll.rawValue
    let wakeupFD = reactorWakeup.descriptor.rawValue
    _ = try systemCall("epoll_ctl(listener)") { lslinux_epoll_add(epollFD, fd, lslinux_EPOLLIN, Self.listenerToken) }
    _ = try systemCall("epoll_ctl(wakeup)") { lslinux_epoll_add(epollFD, wakeupFD, lslinux_EPOLLIN, Self.wakeupToken) }
  }

  /// Takes over a guest whose connection table came from another host
  /// (a backup going live): the guest is told that each of `connections`
  /// closed (their clients' TCP connections ended with the old primary),
  /// and new connections get ids above `highest`, so none is reused. Call
  /// before ``start()``.
  public func adopt(openConnections connections: Set<UInt32>, highest: UInt32) {
    shared.withLock { state in
      for connection in connections.sorted() { state.inbox.append(.closed(connection: connection)) }
      state.firstConnection = max(state.firstConnection, highest &+ 1)
    }
    machineWakeup.signal()
  }

  /// Starts the reactor thread.
  public func start() throws(SystemError) {
    let first = shared.withLock { $0.firstConnection }
    let reactor = try NamedThread(name: "net-reactor") { [self] in
      var state = ReactorState()
      state.nextConnection = first
      runReactor(&state)
    }
    thread.withLock { $0 = reactor }
  }

  /// Stops the reactor and closes every connection.
  public func stop() {
    shared.withLock { $0.stopping = true }
    reactorWakeup.signal()
    let reactor = thread.withLock { value in
      let current = value
      value = nil
      return current
    }
    reactor?.join()
  }

  // MARK: NetworkPort (called on the vCPU thread)

  public func takeEvents(fitting cursor: inout RingCursor) -> [InboundEvent] {
    var taken: [InboundEvent] = []
    let wakeReactor = shared.withLock { state -> Bool in
      while state.inboxStart < state.inbox.count {
        let event = state.inbox[state.inboxStart]
        if cursor.reserve(payload: event.payloadCount) != nil {
          taken.append(event)
          state.inboxStart += 1
          if case .data(let connection, let bytes) = event { state.consumed(bytes.count, of: connection) }
          continue
        }
        // Split data that does not fit whole, if a useful part does.
        if case .data(let connection, let bytes) = event {
          let part = cursor.largestPayload
          if part > 0, part < bytes.count, cursor.reserve(payload: part) != nil {
            taken.append(.data(connection: connection, bytes: Array(bytes[..<part])))
            state.inbox[state.inboxStart] = .data(connection: connection, bytes: Array(bytes[part...]))
            state.consumed(part, of: connection)
          }
        }
        break
      }
      if state.inboxStart > 4096 && state.inboxStart * 2 > state.inbox.count {
        state.inbox.removeFirst(state.inboxStart)
        state.inboxStart = 0
      }
      return !state.resume.isEmpty
    }
    if wakeReactor { reactorWakeup.signal() }
    return taken
  }

  public func send(_ bytes: UnsafeRawBufferPointer, connection: UInt32) {
    let copy = Array(bytes)
    shared.withLock { $0.outbox.append((connection, copy)) }
  }

  public func close(connection: UInt32) {
    shared.withLock { $0.outbox.append((connection, nil)) }
  }

  public func flush() {
    reactorWakeup.signal()
  }

  // MARK: The reactor thread

  /// State only the reactor thread touches.
  struct ReactorState {
    struct Connection {
      let descriptor: Int32
      var pending: [UInt8] = []
      var pendingStart = 0
      var closing = false
      var wantsWrite = false
      var reading = true
    }
    var connections: [UInt32: Connection] = [:]
    var nextConnection: UInt32 = 1
  }

  private func runReactor(_ state: inout ReactorState) {
    var tokens = [UInt64](repeating: 0, count: 256)
    var events = [UInt32](repeating: 0, count: 256)
    var readBuffer = [UInt8](repeating: 0, count: Self.readChunk)
    while true {
      let count = lslinux_epoll_wait(epoll.rawValue, &tokens, &events, 256, 1000)
      if shared.withLock({ $0.stopping }) { break }
      var inbound: [InboundEvent] = []
      for index in 0..<max(0, Int(count)) {
        switch tokens[index] {
        case Self.listenerToken:
          acceptAll(&state, &inbound)
        case Self.wakeupToken:
          reactorWakeup.wait(untilMonotonic: 0)
        default:
          let connection = UInt32(truncatingIfNeeded: tokens[index] - 2)
          if events[index] & (lslinux_EPOLLIN | lslinux_EPOLLHUP | lslinux_EPOLLERR | lslinux_EPOLLRDHUP) != 0 {
            readAll(connection, &state, &inbound, &readBuffer)
          }
          if events[index] & lslinux_EPOLLOUT != 0 {
            writePending(connection, &state, &inbound)
          }
        }
      }
      processOutbox(&state, &inbound)
      if !inbound.isEmpty {
        shared.withLock { shared in
          for event in inbound {
            if case .data(let connection, let bytes) = event { shared.unread[connection, default: 0] += bytes.count }
            if case .closed(let connection) = event { shared.paused.remove(connection) }
          }
          shared.inbox.append(contentsOf: inbound)
        }
        machineWakeup.signal()
      }
    }
    for connection in state.connections.values { Glibc.close(connection.descriptor) }
    state.connections.removeAll()
  }

  private func acceptAll(_ state: inout ReactorState, _ inbound: inout [InboundEvent]) {
    var peer = [CChar](repeating: 0, count: 64)
    while true {
      let fd = lslinux_accept(listener.rawValue, &peer, peer.count)
      if fd < 0 { return }
      _ = lslinux_set_nodelay(fd)
      let connection = state.nextConnection
      state.nextConnection &+= 1
      if lslinux_epoll_add(epoll.rawValue, fd, lslinux_EPOLLIN | lslinux_EPOLLRDHUP, UInt64(connection) + 2) != 0 {
        Glibc.close(fd)
        continue
      }
      state.connections[connection] = ReactorState.Connection(descriptor: fd)
      let address = String(decoding: peer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
      inbound.append(.opened(connection: connection, peer: address))
    }
  }

  private func readAll(
    _ connection: UInt32, _ state: inout ReactorState, _ inbound: inout [InboundEvent], _ buffer: inout [UInt8]
  ) {
    guard let current = state.connections[connection], current.reading else { return }
    var budget =
      Self.inboundLimit - shared.withLock { $0.unread[connection, default: 0] }
      - inbound.reduce(0) { total, event in
        if case .data(connection, let bytes) = event { return total + bytes.count }
        return total
      }
    while budget > 0 {
      let got = buffer.withUnsafeMutableBytes { raw in
        recv(current.descriptor, raw.baseAddress, min(raw.count, budget), 0)
      }
      if got > 0 {
        inbound.append(.data(connection: connection, bytes: Array(buffer[..<got])))
        budget -= got
        continue
      }
      if got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { return }
      if got < 0 && errno == EINTR { continue }
      drop(connection, &state, &inbound)
      return
    }
    // Over the limit: stop reading until the guest catches up.
    setInterest(connection, &state, reading: false)
    shared.withLock { _ = $0.paused.insert(connection) }
  }

  private func processOutbox(_ state: inout ReactorState, _ inbound: inout [InboundEvent]) {
    let (commands, resume) = shared.withLock { shared in
      let commands = shared.outbox
      shared.outbox.removeAll(keepingCapacity: true)
      let resume = shared.resume
      shared.resume.removeAll()
      return (commands, resume)
    }
    var touched: Set<UInt32> = []
    for (connection, bytes) in commands {
      guard state.connections[connection] != nil else { continue }
      if let bytes {
        state.connections[connection]?.pending.append(contentsOf: bytes)
      } else {
        state.connections[connection]?.closing = true
      }
      touched.insert(connection)
    }
    for connection in touched { writePending(connection, &state, &inbound) }
    for connection in resume where state.connections[connection] != nil {
      setInterest(connection, &state, reading: true)
    }
  }

  private func writePending(_ connection: UInt32, _ state: inout ReactorState, _ inbound: inout [InboundEvent]) {
    guard var current = state.connections[connection] else { return }
    while current.pendingStart < current.pending.count {
      let sent = current.pending.withUnsafeBytes { raw in
        Glibc.send(
          current.descriptor, raw.baseAddress.map { $0 + current.pendingStart },
          raw.count - current.pendingStart, Int32(MSG_NOSIGNAL))
      }
      if sent > 0 {
        current.pendingStart += sent
        continue
      }
      if sent < 0 && errno == EINTR { continue }
      if sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { break }
      drop(connection, &state, &inbound)
      return
    }
    if current.pendingStart == current.pending.count {
      current.pending.removeAll(keepingCapacity: true)
      current.pendingStart = 0
    } else if current.pendingStart > 1 << 20 {
      current.pending.removeFirst(current.pendingStart)
      current.pendingStart = 0
    }
    if current.closing && current.pending.isEmpty {
      // The guest closed it: the id is dead on both sides, no event.
      _ = lslinux_epoll_remove(epoll.rawValue, current.descriptor)
      Glibc.close(current.descriptor)
      state.connections[connection] = nil
      shared.withLock { $0.forget(connection) }
      return
    }
    if current.pending.count - current.pendingStart > Self.outboundLimit {
      drop(connection, &state, &inbound)
      return
    }
    state.connections[connection] = current
    let wantsWrite = !current.pending.isEmpty
    if wantsWrite != current.wantsWrite {
      state.connections[connection]?.wantsWrite = wantsWrite
      setInterest(connection, &state, reading: current.reading)
    }
  }

  private func setInterest(_ connection: UInt32, _ state: inout ReactorState, reading: Bool) {
    guard let current = state.connections[connection] else { return }
    state.connections[connection]?.reading = reading
    let events =
      (reading ? lslinux_EPOLLIN | lslinux_EPOLLRDHUP : 0) | (current.wantsWrite ? lslinux_EPOLLOUT : 0)
    _ = lslinux_epoll_modify(epoll.rawValue, current.descriptor, events, UInt64(connection) + 2)
  }

  /// The client went away or misbehaved: close it and tell the guest.
  private func drop(_ connection: UInt32, _ state: inout ReactorState, _ inbound: inout [InboundEvent]) {
    guard let current = state.connections.removeValue(forKey: connection) else { return }
    _ = lslinux_epoll_remove(epoll.rawValue, current.descriptor)
    Glibc.close(current.descriptor)
    inbound.append(.closed(connection: connection))
  }
}

extension NetworkService.Shared {
  /// The guest took `count` bytes of a connection's input.
  mutating func consumed(_ count: Int, of connection: UInt32) {
    let left = (unread[connection] ?? 0) - count
    unread[connection] = left > 0 ? left : nil
    if paused.contains(connection) && left < NetworkService.inboundLimit / 2 {
      paused.remove(connection)
      resume.append(connection)
    }
  }

  /// A connection is gone.
  mutating func forget(_ connection: UInt32) {
    unread[connection] = nil
    paused.remove(connection)
  }
}
