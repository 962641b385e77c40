import CLockstepLinux
import Logging
import Synchronization

#if canImport(Glibc)
  import Glibc
#endif

/// Counters and last contact of a ``Heartbeat`` endpoint.
public struct HeartbeatStatus: Sendable, Equatable {
  /// Heartbeats sent.
  public var sent: UInt64 = 0
  /// Heartbeats that failed to send (e.g. the peer's port closed: ICMP).
  public var sendFailures: UInt64 = 0
  /// Heartbeats accepted from the peer.
  public var received: UInt64 = 0
  /// The peer's heartbeats that never arrived: gaps in the sequence of one
  /// boot id (lost on the network, or the peer could not send on time).
  public var missed: UInt64 = 0
  /// Datagrams whose HMAC did not verify (forged, or another cluster's key).
  public var rejectedForged: UInt64 = 0
  /// Authentic heartbeats seen before (a sequence not above the last one
  /// of its boot id, or a boot id already superseded).
  public var rejectedReplayed: UInt64 = 0
  /// Datagrams that are not well-formed heartbeats (length, magic, version,
  /// fields).
  public var rejectedMalformed: UInt64 = 0
  /// Authentic heartbeats not meant for this endpoint: another VM's, or
  /// this node's own reflected back to it.
  public var rejectedForeign: UInt64 = 0
  /// When the last heartbeat was accepted (monotonic ns); nil before the
  /// first.
  public var lastHeard: UInt64?
  /// The last heartbeat accepted.
  public var lastPacket: HeartbeatPacket?

  /// Creates an empty status.
  public init() {}

  /// These counters plus `other`'s (the last contact is `other`'s when it
  /// has one).
  public func adding(_ other: HeartbeatStatus?) -> HeartbeatStatus {
    guard let other else { return self }
    var sum = self
    // Saturating sums: the counters come partly from peers (HB-1).
    func add(_ a: UInt64, _ b: UInt64) -> UInt64 { a.addingReportingOverflow(b).overflow ? .max : a + b }
    sum.sent = add(sum.sent, other.sent)
    sum.sendFailures = add(sum.sendFailures, other.sendFailures)
    sum.received = add(sum.received, other.received)
    sum.missed = add(sum.missed, other.missed)
    sum.rejectedForged = add(sum.rejectedForged, other.rejectedForged)
    sum.rejectedReplayed = add(sum.rejectedReplayed, other.rejectedReplayed)
    sum.rejectedMalformed = add(sum.rejectedMalformed, other.rejectedMalformed)
    sum.rejectedForeign = add(sum.rejectedForeign, other.rejectedForeign)
    sum.lastHeard = other.lastHeard ?? lastHeard
    sum.lastPacket = other.lastPacket ?? lastPacket
    return sum
  }
}

/// UDP heartbeats with the peer VMM: sends one every interval to the peer
/// address and accepts the peer's, authenticated with the cluster's
/// heartbeat key (HMAC-SHA256) and refused when replayed.
///
/// A heartbeat is accepted only if its MAC verifies, it names this VM and
/// another node, and its sequence is above the last accepted one of its
/// boot id. The VMMs pin the peer: once the logging channel (mutual TLS)
/// has told each side the other's node name and boot id
/// (``expect(peer:bootID:)``), only that sender with that boot id is
/// accepted, so a heartbeat recorded from an earlier process of the peer,
/// replayed, is refused as foreign. Before that (and in an endpoint never
/// pinned) a new boot id of a sender supersedes its previous one for good,
/// and a recorded packet replayed to a freshly started receiver is accepted
/// once per unseen boot id.
///
/// Each rejection kind is logged at most once a minute (with how many were
/// suppressed), so a flood of garbage cannot flood the log. One thread,
/// `hb-VMNAME`, sends on schedule and receives in between; ``stop()`` ends
/// it within one interval.
public final class Heartbeat: Sendable {
  /// What an endpoint needs.
  public struct Configuration: Sendable {
    /// The VM's name (carried, and checked, in every heartbeat).
    public var vm: String
    /// This node's name.
    public var node: String
    /// The local address to bind (port 0 picks one: see ``Heartbeat/port``).
    public var bind: HostPort
    /// The peer's heartbeat address.
    public var peer: HostPort
    /// The cluster's heartbeat key (``NodeCredentials/heartbeatKey``).
    public var key: [UInt8]
    /// Interval and failure timeout.
    public var timing: HeartbeatTiming
    /// The generation carried in heartbeats (see ``Heartbeat/update(generation:flags:)``).
    public var generation: UInt64
    /// The flags carried.
    public var flags: HeartbeatFlags
    /// Whether heartbeats go out before the peer is pinned
    /// (``Heartbeat/expect(peer:bootID:)``); a joining backup waits for its
    /// welcome, so a standby sends nothing to a primary that is not its.
    public var sendsBeforePinned = true

    /// Creates a configuration.
    public init(
      vm: String, node: String, bind: HostPort, peer: HostPort, key: [UInt8], timing: HeartbeatTiming = .default,
      generation: UInt64 = 0, flags: HeartbeatFlags = []
    ) {
      self.vm = vm
      self.node = node
      self.bind = bind
      self.peer = peer
      self.key = key
      self.timing = timing
      self.generation = generation
      self.flags = flags
    }
  }

  /// The rejection kinds, for rate-limited logging.
  enum Rejection: Int, CaseIterable {
    case forged, replayed, malformed, foreign
  }

  /// The sequence state of one sender.
  struct SenderState {
    var bootID: UInt64
    var lastSequence: UInt64
    /// Boot ids superseded by a newer one (bounded, oldest dropped).
    var retired: [UInt64] = []
  }

  struct State {
    var status = HeartbeatStatus()
    var detector: FailureDetector
    var generation: UInt64
    var flags: HeartbeatFlags
    var sequence: UInt64 = 0
    var senders: [String: SenderState] = [:]
    /// The only sender (name and boot id) accepted, once known.
    var expected: (name: String, bootID: UInt64)?
    /// Per rejection kind: when it was last logged, and how many since.
    var lastLogged: [UInt64?] = Array(repeating: nil, count: Rejection.allCases.count)
    var suppressed: [UInt64] = Array(repeating: 0, count: Rejection.allCases.count)
  }

  /// How many superseded boot ids are remembered per sender.
  static let retiredLimit = 32
  /// How many senders are tracked (only authentic ones get this far).
  static let senderLimit = 16
  /// The shortest time between two log lines of one rejection kind.
  static let logPeriodNanoseconds: UInt64 = 60_000_000_000

  private let configuration: Configuration
  private let socket: UDPSocket
  private let destination: UDPSocket.Destination
  /// This endpoint's random boot id (carried in every heartbeat it sends;
  /// the peer learns it over the TLS channel, see ``expect(peer:bootID:)``).
  public let bootID: UInt64
  private let state: Mutex<State>
  private let stopping = Atomic<Bool>(false)
  private let wakeup: Wakeup
  private let thread = Mutex<NamedThread?>(nil)
  private let logger: Logger

  /// The local UDP port heartbeats are received on.
  public var port: Int { socket.port }

  /// Binds `configuration.bind`, resolves the peer and starts the thread
  /// (the first heartbeat goes out at once).
  public init(_ configuration: Configuration, logger: Logger) throws(SystemError) {
    self.configuration = configuration
    self.logger = logger
    socket = try UDPSocket(binding: configuration.bind)
    destination = try socket.resolve(configuration.peer)
    wakeup = try Wakeup()
    var random: UInt64 = 0
    while random == 0 {
      guard lslinux_getrandom(&random, 8) == 8 else { throw SystemError("getrandom(heartbeat boot id)", errno: errno) }
    }
    bootID = random
    state = Mutex(
      State(
        detector: FailureDetector(
          failureTimeout: configuration.timing.failureTimeout, start: ClockReading.monotonicNanoseconds()),
        generation: configuration.generation, flags: configuration.flags))
    let started = try NamedThread(name: "hb-\(configuration.vm)") { [self] in run() }
    thread.withLock { $0 = started }
  }

  deinit {
    stop()
  }

  /// The counters and last contact.
  public var status: HeartbeatStatus { state.withLock { $0.status } }

  /// When a heartbeat was last accepted (monotonic ns); nil before the first.
  public var lastHeard: UInt64? { state.withLock { $0.status.lastHeard } }

  /// The failure detector, fed with every accepted heartbeat and with
  /// ``heard(at:)``.
  public var detector: FailureDetector { state.withLock { $0.detector } }

  /// Records other traffic from the peer (log records, acks) at `time`
  /// (monotonic ns) as a sign of life.
  public func heard(at time: UInt64 = ClockReading.monotonicNanoseconds()) {
    state.withLock { $0.detector.heard(at: time) }
  }

  /// Whether the peer is suspected at `now` (monotonic ns).
  public func isPeerSuspected(now: UInt64 = ClockReading.monotonicNanoseconds()) -> Bool {
    state.withLock { $0.detector.isSuspected(now: now) }
  }

  /// From now on accepts heartbeats only from `peer` with `bootID`, both
  /// learned over the mutually authenticated logging channel: a packet from
  /// any other sender or boot id (an old process of the peer, replayed) is
  /// foreign, so a recorded heartbeat can neither keep a dead peer alive
  /// nor displace the live one.
  public func expect(peer: String, bootID: UInt64) {
    state.withLock { state in
      state.expected = (peer, bootID)
      state.senders = [:]
    }
  }

  /// Changes the generation and flags carried from the next heartbeat on.
  public func update(generation: UInt64, flags: HeartbeatFlags) {
    state.withLock {
      $0.generation = generation
      $0.flags = flags
    }
  }

  /// Stops the thread (within one interval) and waits for it. Idempotent.
  public func stop() {
    stopping.store(true, ordering: .releasing)
    wakeup.signal()
    let running = thread.withLock { current -> NamedThread? in
      defer { current = nil }
      return current
    }
    running?.join()
  }

  // MARK: The thread

  private func run() {
    let interval = configuration.timing.intervalNanoseconds
    var nextSend = ClockReading.monotonicNanoseconds()
    while !stopping.load(ordering: .acquiring) {
      var now = ClockReading.monotonicNanoseconds()
      if now >= nextSend {
        if configuration.sendsBeforePinned || state.withLock({ $0.expected != nil }) { sendOne(now: now) }
        nextSend += interval
        if nextSend <= now { nextSend = now + interval }
      }
      now = ClockReading.monotonicNanoseconds()
      let wait = nextSend > now ? nextSend - now : 0
      let ready = lslinux_wait_either(socket.descriptor.rawValue, wakeup.descriptor.rawValue, wait)
      if ready & 2 != 0 { wakeup.wait(untilMonotonic: 0) }
      if ready & 1 != 0 { drain() }
    }
  }

  private func sendOne(now: UInt64) {
    let packet = state.withLock { state -> HeartbeatPacket in
      state.sequence += 1
      return HeartbeatPacket(
        flags: state.flags, vm: configuration.vm, sender: configuration.node, generation: state.generation,
        bootID: bootID, sequence: state.sequence, sentMonotonicNanoseconds: now)
    }
    do {
      try socket.send(packet.encode(key: configuration.key), to: destination)
      state.withLock { $0.status.sent += 1 }
    } catch {
      state.withLock { $0.status.sendFailures += 1 }
    }
  }

  /// Reads what is waiting (bounded, so sending stays on schedule).
  private func drain() {
    for _ in 0..<64 {
      let datagram: [UInt8]?
      do {
        datagram = try socket.receive(capacity: HeartbeatPacket.maximumLength + 1)
      } catch {
        continue  // ECONNREFUSED and the like: an ICMP answer to a send, nothing to read
      }
      guard let datagram else { return }
      accept(datagram, at: ClockReading.monotonicNanoseconds())
    }
  }

  /// Checks one datagram received at `now` and counts it.
  func accept(_ datagram: [UInt8], at now: UInt64) {
    let packet: HeartbeatPacket
    do {
      packet = try HeartbeatPacket.decode(datagram, key: configuration.key)
    } catch {
      reject(error.kind == .badMAC ? .forged : .malformed, "\(error)", at: now)
      return
    }
    guard packet.vm == configuration.vm else {
      reject(.foreign, "a heartbeat of VM '\(packet.vm)' from '\(packet.sender)'", at: now)
      return
    }
    guard packet.sender != configuration.node else {
      reject(.foreign, "this node's own heartbeat came back (reflected)", at: now)
      return
    }
    let expected = state.withLock { $0.expected }
    if let expected, packet.sender != expected.name || packet.bootID != expected.bootID {
      reject(
        .foreign,
        "a heartbeat from '\(packet.sender)' (boot id \(packet.bootID)); this endpoint accepts only '\(expected.name)' with boot id \(expected.bootID)",
        at: now)
      return
    }
    let verdict = state.withLock { state -> String? in
      let previous = state.senders[packet.sender].flatMap { $0.bootID == packet.bootID ? $0.lastSequence : nil }
      if let reason = Self.checkSequence(packet, senders: &state.senders) { return reason }
      // Saturating: an authentic peer can claim any gap (found by fuzzing, HB-1).
      if let previous, previous < UInt64.max, packet.sequence > previous + 1 {
        let gap = packet.sequence - previous - 1
        state.status.missed =
          state.status.missed.addingReportingOverflow(gap).overflow ? .max : state.status.missed + gap
      }
      state.status.received += 1
      state.status.lastHeard = now
      state.status.lastPacket = packet
      state.detector.heard(at: now)
      return nil
    }
    if let verdict { reject(.replayed, verdict, at: now) }
  }

  /// Checks `packet`'s boot id and sequence against what `senders` saw and
  /// records it; returns why it is a replay, or nil when it is fresh.
  static func checkSequence(_ packet: HeartbeatPacket, senders: inout [String: SenderState]) -> String? {
    guard var sender = senders[packet.sender] else {
      if senders.count >= senderLimit, let any = senders.keys.first { senders[any] = nil }
      senders[packet.sender] = SenderState(bootID: packet.bootID, lastSequence: packet.sequence)
      return nil
    }
    if packet.bootID == sender.bootID {
      guard packet.sequence > sender.lastSequence else {
        return "sequence \(packet.sequence) of '\(packet.sender)' not above \(sender.lastSequence)"
      }
      sender.lastSequence = packet.sequence
    } else {
      if sender.retired.contains(packet.bootID) {
        return "boot id \(packet.bootID) of '\(packet.sender)' was superseded"
      }
      sender.retired.append(sender.bootID)
      if sender.retired.count > retiredLimit { sender.retired.removeFirst() }
      sender.bootID = packet.bootID
      sender.lastSequence = packet.sequence
    }
    senders[packet.sender] = sender
    return nil
  }

  private func reject(_ kind: Rejection, _ reason: String, at now: UInt64) {
    let suppressed = state.withLock { state -> UInt64? in
      switch kind {
      case .forged: state.status.rejectedForged += 1
      case .replayed: state.status.rejectedReplayed += 1
      case .malformed: state.status.rejectedMalformed += 1
      case .foreign: state.status.rejectedForeign += 1
      }
      if let last = state.lastLogged[kind.rawValue], now &- last < Self.logPeriodNanoseconds {
        state.suppressed[kind.rawValue] += 1
        return nil
      }
      state.lastLogged[kind.rawValue] = now
      defer { state.suppressed[kind.rawValue] = 0 }
      return state.suppressed[kind.rawValue]
    }
    guard let suppressed else { return }
    let more = suppressed > 0 ? " (\(suppressed) more of this kind in the last minute not logged)" : ""
    logger.warning("heartbeat: rejected a \(kind) datagram on UDP port \(socket.port): \(reason)\(more)")
  }
}
